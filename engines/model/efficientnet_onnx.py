"""EfficientNet-Lite0 written straight into an ONNX graph from its weights, without PyTorch.

The same network as ``efficientnet.build_network`` (parity checked in
tests/test_packaged_model.py), built with ``onnx.helper`` from the numpy state dict that
``torch_file`` reads: each batch norm folded into the convolution before it (what ONNX
Runtime's optimiser would do to a traced graph anyway), ReLU6 as ``Clip(0, 6)``, TensorFlow's
"same" padding as the convolution's own asymmetric pads, and the pooled features divided by
their L2 norm. So an install without PyTorch exports the packaged model in well under a
second, and one with PyTorch no longer imports it for this.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import efficientnet

#: ``torch.nn.functional.normalize``'s floor on the norm.
NORM_EPS = 1e-12


class _Graph:
    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state = state
        self.nodes: list[Any] = []
        self.weights: list[Any] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def constant(self, stem: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attributes))
        return out

    def conv_bn(self, x: str, conv: str, bn: str, *, stride: int = 1, size: int = 0, groups: int = 1,
                relu6: bool = True) -> str:
        """``conv`` (bias-free) then batch norm ``bn``, folded into one convolution."""
        weight = self.state[f"{conv}.weight"].astype(np.float64)
        gamma, beta = self.state[f"{bn}.weight"], self.state[f"{bn}.bias"]
        mean, var = self.state[f"{bn}.running_mean"], self.state[f"{bn}.running_var"]
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + efficientnet.BN_EPS)
        folded = (weight * scale[:, None, None, None]).astype(np.float32)
        bias = (beta - mean * scale).astype(np.float32)
        kernel = weight.shape[-1]
        before, after = efficientnet._same_padding(size, kernel, stride) if kernel > 1 or stride > 1 else (0, 0)
        y = self.node("Conv", [x, self.constant("w", folded), self.constant("b", bias)], kernel_shape=[kernel, kernel],
                      strides=[stride, stride], pads=[before, before, after, after], group=groups)
        if relu6:
            y = self.node("Clip", [y, self.constant("lo", np.array(0.0, np.float32)),
                                   self.constant("hi", np.array(6.0, np.float32))])
        return y


def build_model(state: dict[str, np.ndarray], opset: int) -> Any:
    """The ``onnx.ModelProto``: ``pixel_values`` (batch, 3, 224, 224) to unit ``embedding`` (batch, 1280)."""
    from onnx import TensorProto, checker, helper

    size = efficientnet.IMAGE_SIZE
    g = _Graph(state)
    x = g.conv_bn("pixel_values", "_conv_stem", "_bn0", stride=2, size=size)
    size = math.ceil(size / 2)
    index = 0
    for repeats, _kernel, stride, expand, cin, cout in efficientnet.STAGES:
        for n in range(repeats):
            step, channels_in = (stride, cin) if n == 0 else (1, cout)
            prefix = f"_blocks.{index}"
            y = g.conv_bn(x, f"{prefix}._expand_conv", f"{prefix}._bn0") if expand != 1 else x
            y = g.conv_bn(y, f"{prefix}._depthwise_conv", f"{prefix}._bn1", stride=step, size=size,
                          groups=channels_in * expand)
            y = g.conv_bn(y, f"{prefix}._project_conv", f"{prefix}._bn2", relu6=False)
            x = g.node("Add", [x, y]) if step == 1 and channels_in == cout else y
            size = math.ceil(size / step)
            index += 1
    x = g.conv_bn(x, "_conv_head", "_bn1")
    pooled = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
    norm = g.node("ReduceL2", [pooled], axes=[1], keepdims=1)
    norm = g.node("Max", [norm, g.constant("eps", np.array(NORM_EPS, np.float32))])
    g.nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"], name="normalise"))
    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, efficientnet.IMAGE_SIZE,
                                                                            efficientnet.IMAGE_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", efficientnet.DIM])],
        initializer=g.weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="image-search")
    checker.check_model(model)
    return model
