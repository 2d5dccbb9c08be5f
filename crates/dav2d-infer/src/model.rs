//! What the ONNX model file says about itself beyond what ONNX Runtime
//! reports: the operator that makes the graph's first output, read from the
//! file's protobuf (only the fields needed, every other one skipped), so a
//! model that ends in its own `Sigmoid` or `Softmax` is not activated twice.

use prost::Message;

/// `ModelProto`: only its graph (field 7).
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

/// `GraphProto`: its nodes (field 1) and outputs (field 12).
#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

/// `NodeProto`: what it writes (field 2) and its operator (field 4).
#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
}

/// `ValueInfoProto`: its name (field 1).
#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
}

/// The operator that writes the model's first output (`Sigmoid`, `Conv`,
/// ...), or `None` when the file does not say (not a model, no graph).
pub fn last_operator(model: &[u8]) -> Option<String> {
    let graph = ModelProto::decode(model).ok()?.graph?;
    let first = &graph.output.first()?.name;
    graph
        .node
        .iter()
        .rev()
        .find(|node| node.output.iter().any(|o| o == first))
        .map(|node| node.op_type.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_of_the_first_output_is_found() {
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    NodeProto {
                        output: vec!["logits".to_string()],
                        op_type: "Conv".to_string(),
                    },
                    NodeProto {
                        output: vec!["probabilities".to_string()],
                        op_type: "Sigmoid".to_string(),
                    },
                ],
                output: vec![ValueInfoProto {
                    name: "probabilities".to_string(),
                }],
            }),
        };
        let bytes = model.encode_to_vec();
        assert_eq!(last_operator(&bytes).as_deref(), Some("Sigmoid"));
        assert_eq!(last_operator(b"not a model"), None);
    }
}
