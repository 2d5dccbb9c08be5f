"""Small ONNX models the processor tests run, built with the ``onnx`` package.

``python models.py DIR`` writes them into DIR (the Rust tests call it so);
the Python tests import :func:`write_models`.

- ``conv_sigmoid.onnx``: N x 3 x H x W -> Conv 3x3 (3 -> 1, padded) -> Sigmoid,
  any batch and size.
- ``conv_logits.onnx``: the same convolution without the sigmoid (logits),
  any batch and size.
- ``pointwise_logits.onnx``: a 1x1 convolution (3 -> 1) giving logits, any
  batch and size.
- ``linear_logits.onnx``: the same per-pixel weighted sum of the channels as
  Mul + ReduceSum (onnxruntime's Conv costs about 10 ms at 1024x1024 on two
  cores, this a few ms): the benchmark's model.
- ``fixed_64.onnx``: the same convolution without the sigmoid (logits), input
  fixed at 1 x 3 x 64 x 64.
- ``two_outputs.onnx``: N x 1 x H x W -> Conv 1x1 (1 -> 2) logits (softmax
  over two classes) and a second output, the input doubled.
- ``nan_out.onnx``: the convolution, then ``Sqrt(-|x| - 1)``: NaN everywhere.
- ``two_inputs.onnx``: ``x + z``, two inputs (refused: dav2d feeds one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _conv(weights: np.ndarray, bias: np.ndarray, name: str = "conv") -> tuple[list, list]:
    inits = [
        numpy_helper.from_array(weights.astype(np.float32), f"{name}_w"),
        numpy_helper.from_array(bias.astype(np.float32), f"{name}_b"),
    ]
    k = weights.shape[-1]
    pad = k // 2
    node = helper.make_node("Conv", ["x", f"{name}_w", f"{name}_b"], [f"{name}_out"], pads=[pad] * 4)
    return [node], inits


def conv_weights(channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The fixed 3x3 weights of the convolution models (an edge-ish filter)."""
    rng = np.random.default_rng(7)
    weights = rng.normal(0, 0.5, size=(1, channels, 3, 3))
    # Zero-mean, so a textured input gives probabilities on both sides of 0.5.
    return weights - weights.mean(), np.array([0.0])


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_models(out: Path) -> dict[str, Path]:
    """Writes the models into ``out``; their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    dynamic = ["n", 3, "h", "w"]

    def one_output(name: str, nodes: list, inits: list, shape: list = dynamic) -> None:
        """A model of input ``x`` (``shape``) and one output ``y``."""
        y_shape = [shape[0], 1, *shape[2:]]
        _save(
            helper.make_graph(
                nodes,
                name,
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                inits,
            ),
            out / f"{name}.onnx",
        )

    w, b = conv_weights()
    nodes, inits = _conv(w, b)
    one_output("conv_sigmoid", [*nodes, helper.make_node("Sigmoid", ["conv_out"], ["y"])], inits)
    nodes, inits = _conv(w, b)
    one_output("conv_logits", [*nodes, helper.make_node("Identity", ["conv_out"], ["y"])], inits)
    nodes, inits = _conv(w, b)
    one_output("fixed_64", [*nodes, helper.make_node("Identity", ["conv_out"], ["y"])], inits, [1, 3, 64, 64])
    nodes, inits = _conv(np.array([[[[0.9]], [[-0.4]], [[-0.5]]]]), np.array([0.0]))
    one_output("pointwise_logits", [*nodes, helper.make_node("Identity", ["conv_out"], ["y"])], inits)
    nodes, inits = _conv(w, b)
    one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
    nan = [
        helper.make_node("Abs", ["conv_out"], ["magnitude"]),
        helper.make_node("Neg", ["magnitude"], ["negative"]),
        helper.make_node("Sub", ["negative", "one"], ["below"]),
        helper.make_node("Sqrt", ["below"], ["y"]),
    ]
    one_output("nan_out", [*nodes, *nan], [*inits, one])
    weights = numpy_helper.from_array(np.array([0.9, -0.4, -0.5], np.float32).reshape(1, 3, 1, 1), "weights")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    linear = [
        helper.make_node("Mul", ["x", "weights"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axes"], ["y"], keepdims=1),
    ]
    one_output("linear_logits", linear, [weights, axes])
    two_w = np.array([[[[2.0]]], [[[-2.0]]]])
    nodes, inits = _conv(two_w, np.array([-1.0, 1.0]))
    nodes.append(helper.make_node("Add", ["x", "x"], ["doubled"]))
    _save(
        helper.make_graph(
            [*nodes, helper.make_node("Identity", ["conv_out"], ["logits"])],
            "two_outputs",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],
            [
                helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2, "h", "w"]),
                helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["n", 1, "h", "w"]),
            ],
            inits,
        ),
        out / "two_outputs.onnx",
    )
    _save(
        helper.make_graph(
            [helper.make_node("Add", ["x", "z"], ["y"])],
            "two_inputs",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, dynamic),
                helper.make_tensor_value_info("z", TensorProto.FLOAT, dynamic),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, dynamic)],
            [],
        ),
        out / "two_inputs.onnx",
    )
    return {p.stem: p for p in out.glob("*.onnx")}


if __name__ == "__main__":
    for name, path in sorted(write_models(Path(sys.argv[1])).items()):
        print(name, path)
