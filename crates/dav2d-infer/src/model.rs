//! The ONNX model file before ONNX Runtime opens it: whether the path is
//! one (not a directory or a PyTorch checkpoint), and what it says about
//! itself beyond what ONNX Runtime reports: the operator that makes the
//! graph's first output, read from the
//! file's protobuf (only the fields needed, every other one skipped), so a
//! model that ends in its own `Sigmoid` or `Softmax` is not activated twice.

use std::path::Path;

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

/// What the file at `path` is, when it is not an ONNX model, and how to
/// make one.
fn not_onnx(path: &Path) -> Option<String> {
    let export = "export it to ONNX first, e.g. `torch.onnx.export(model, example_input, \"model.onnx\")`, and point model_path at the .onnx file";
    if path.is_dir() {
        return Some(format!(
            "model_path {} is a directory, not an ONNX model file; {export}",
            path.display()
        ));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let kind = match extension.as_str() {
        "pt" | "pth" => "a PyTorch checkpoint",
        "safetensors" => "a safetensors file",
        "ckpt" => "a checkpoint",
        "h5" | "keras" => "a Keras model",
        "pb" => "a TensorFlow graph",
        _ => return None,
    };
    Some(format!(
        "model_path {} is {kind} (.{extension}), which dav2d cannot run; {export}",
        path.display()
    ))
}

/// Checks that `path` is an existing file that may be an ONNX model (not a
/// directory, a PyTorch checkpoint or another format), without loading it.
pub fn check_model(path: &Path) -> Result<(), String> {
    if let Some(message) = not_onnx(path) {
        return Err(message);
    }
    if !path.is_file() {
        return Err(format!(
            "model_path {} does not exist; give the absolute path of an ONNX model",
            path.display()
        ));
    }
    Ok(())
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
