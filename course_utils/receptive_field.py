"""Receptive field of a chain of convolution and pooling layers: by formula and by gradient.

Notebook 08 writes the recurrence out by hand first; this module is the tidy, tested version.

For a layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` the effective kernel is
``k_eff = d * (k - 1) + 1`` and, going from the layer's input to its output::

    size_out  = size_in + (k_eff - 1) * jump_in     # pixels of the network input one unit sees
    jump_out  = jump_in * s                         # input pixels between two neighbouring units
    start_out = start_in + ((k_eff - 1) / 2 - p) * jump_in   # centre of the first unit's field

starting from ``size = 1, jump = 1, start = 0.5`` at the input (pixel centres at 0.5, 1.5, ...).

``receptive_field(model, input_size)`` runs one forward pass on zeros, records the leaf modules in the
order ``forward`` calls them (so it works for ``nn.Sequential`` and for modules such as the lecture's
``Net`` whose ``forward`` calls layers one after the other), and applies the recurrence.
``empirical_receptive_field`` measures the same thing from the gradient of one output unit.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .core import eval_mode, to_numpy

Pair = tuple[int, int]

#: Layers that act on each pixel on its own (or are ignored for the receptive field): they pass
#: size, jump and start through unchanged. BatchNorm counts as pointwise (true in eval mode).
POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
             nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
             nn.BatchNorm2d, nn.Dropout, nn.Dropout2d, nn.Identity)
#: Layers with a spatial window that the recurrence handles.
WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(value) -> Pair:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair of ints, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _square(value: Pair):
    """An int when both axes agree (square kernels), else the (height, width) pair."""
    return value[0] if value[0] == value[1] else value


@dataclass
class LayerRF:
    """One row of the table: the receptive field *after* this layer (per axis: height, width)."""

    name: str
    kind: str
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    out_shape: Pair
    size: Pair
    jump: Pair
    start: tuple[float, float]


@dataclass
class ReceptiveField:
    """Result of :func:`receptive_field`.

    ``size``  receptive field of one output unit, in input pixels (int when square, else (h, w));
    ``jump``  input pixels between neighbouring output units (the total stride);
    ``start`` centre of the first output unit's field, in input pixel coordinates (pixel i spans
              [i, i+1), so 0.5 is the centre of pixel 0);
    ``layers`` one :class:`LayerRF` per layer, in call order; ``input_shape`` (H, W).
    Printing it (or showing it as the last line of a notebook cell) renders the per-layer table.
    """

    layers: list[LayerRF] = field(default_factory=list)
    input_shape: Pair = (0, 0)

    def _final(self, attr: str, default):
        return getattr(self.layers[-1], attr) if self.layers else default

    @property
    def size(self):
        return _square(self._final("size", (1, 1)))

    @property
    def jump(self):
        return _square(self._final("jump", (1, 1)))

    @property
    def start(self):
        s = self._final("start", (0.5, 0.5))
        return s[0] if s[0] == s[1] else s

    def rows(self) -> list[dict]:
        """The table as a list of dicts (one per layer), e.g. for ``pandas.DataFrame(rf.rows())``."""
        return [{"layer": r.name, "type": r.kind, "kernel": _square(r.kernel), "stride": _square(r.stride),
                 "padding": _square(r.padding), "dilation": _square(r.dilation),
                 "output (H, W)": r.out_shape, "jump": _square(r.jump), "receptive field": _square(r.size)}
                for r in self.layers]

    def __str__(self) -> str:
        rows = [{"layer": "input", "type": "", "kernel": "", "stride": "", "padding": "", "dilation": "",
                 "output (H, W)": self.input_shape, "jump": 1, "receptive field": 1}] + self.rows()
        headers = list(rows[0])
        cells = [[str(row[h]) for h in headers] for row in rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        line = lambda items: "  ".join(s.ljust(w) for s, w in zip(items, widths)).rstrip()
        return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells])

    def _repr_html_(self) -> str:
        rows = self.rows()
        headers = ["layer", "type", "kernel", "stride", "padding", "dilation", "output (H, W)", "jump",
                   "receptive field"]
        head = "".join(f"<th>{h}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{r[h]}</td>" for h in headers) + "</tr>" for r in rows)
        return (f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                f"<p>receptive field {self.size}, jump {self.jump}</p>")

    def __repr__(self) -> str:
        return f"ReceptiveField(size={self.size}, jump={self.jump}, layers={len(self.layers)})"


def layer_params(module: nn.Module) -> tuple[Pair, Pair, Pair, Pair]:
    """(kernel, stride, padding, dilation), each an (h, w) pair, of a Conv2d/MaxPool2d/AvgPool2d.

    ``padding='same'`` is turned into the symmetric padding that keeps the size (stride 1 only).
    """
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride if module.stride is not None else module.kernel_size)
    dilation = _pair(getattr(module, "dilation", 1))
    padding = module.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # 'same': total padding d*(k-1), here as a (possibly half-integer) per-side value
            padding = tuple(d * (k - 1) / 2 for k, d in zip(kernel, dilation))
    padding = padding if isinstance(padding, tuple) and isinstance(padding[0], float) else _pair(padding)
    return kernel, stride, padding, dilation


def rf_after_layer(size: float, jump: float, start: float, kernel: int, stride: int = 1, padding: float = 0,
                   dilation: int = 1) -> tuple[float, float, float]:
    """One step of the recurrence along one axis: (size, jump, start) before -> after the layer."""
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"kernel, stride and dilation must be >= 1; got {kernel}, {stride}, {dilation}")
    k_eff = dilation * (kernel - 1) + 1
    return size + (k_eff - 1) * jump, jump * stride, start + ((k_eff - 1) / 2 - padding) * jump


def _input_shape(input_size) -> tuple[int, ...]:
    shape = tuple(int(v) for v in input_size)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W) with positive sizes; got {input_size!r}")
    return shape


def receptive_field(model: nn.Module, input_size) -> ReceptiveField:
    """Analytic receptive field of ``model``'s output for an input of ``input_size``.

    ``input_size`` is (C, H, W) or (N, C, H, W). One forward pass on zeros (no gradients, model put
    in eval mode and restored) records the leaf modules in the order they are called. Supported:
    Conv2d, MaxPool2d, AvgPool2d (any kernel, stride, padding, dilation) and pointwise layers
    (ReLU and other activations, BatchNorm2d, Dropout, Identity); functional calls such as
    ``F.relu`` are invisible and fine when pointwise. Any other layer raises ValueError naming it.
    The layers must form one chain: a layer whose input size is not the previous layer's output size
    (a ResNet shortcut, an Inception branch) raises ValueError.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"receptive_field expects an nn.Module, got {type(model).__name__}")
    shape = _input_shape(input_size)
    calls: list[tuple[str, nn.Module, tuple, tuple]] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module, inputs, output):
        in_shape = tuple(inputs[0].shape) if inputs and torch.is_tensor(inputs[0]) else ()
        out_shape = tuple(output.shape) if torch.is_tensor(output) else ()
        calls.append((names.get(module, type(module).__name__) or type(module).__name__, module, in_shape, out_shape))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        for h in handles:
            h.remove()

    result = ReceptiveField(input_shape=(shape[2], shape[3]))
    size, jump, start = [1.0, 1.0], [1.0, 1.0], [0.5, 0.5]
    current: Pair = (shape[2], shape[3])
    for name, module, in_shape, out_shape in calls:
        if not isinstance(module, WINDOWED + POINTWISE):
            raise ValueError(
                f"receptive_field: layer '{name}' ({type(module).__name__}) is not supported. It handles "
                "Conv2d, MaxPool2d, AvgPool2d and pointwise layers (activations, BatchNorm2d, Dropout). "
                "Pass only the convolutional part of the network (e.g. model.features).")
        if len(in_shape) != 4 or tuple(in_shape[2:]) != current:
            raise ValueError(
                f"receptive_field: layer '{name}' gets an input of spatial size {tuple(in_shape[2:])} but the "
                f"previous layer produced {current}. The tool follows one chain of layers; branching networks "
                "(ResNet shortcuts, Inception branches) are not supported.")
        current = (out_shape[2], out_shape[3])
        if isinstance(module, POINTWISE):
            continue
        kernel, stride, padding, dilation = layer_params(module)
        for axis in range(2):
            size[axis], jump[axis], start[axis] = rf_after_layer(size[axis], jump[axis], start[axis], kernel[axis],
                                                                 stride[axis], padding[axis], dilation[axis])
        result.layers.append(LayerRF(
            name=name, kind=type(module).__name__, kernel=kernel, stride=stride,
            padding=tuple(int(p) if float(p).is_integer() else p for p in padding), dilation=dilation,
            out_shape=current, size=(int(size[0]), int(size[1])), jump=(int(jump[0]), int(jump[1])),
            start=(start[0], start[1])))
    return result


@dataclass
class EmpiricalRF:
    """Result of :func:`empirical_receptive_field`.

    ``grad``  (H, W) float NumPy array: |d output unit / d input|, summed over input channels;
    ``size``  (h, w) of the smallest box holding every input pixel with a non-zero gradient
              (int when square); ``box`` (top, left, bottom, right), inclusive; ``unit`` the
              output position (row, col) that was differentiated.
    """

    grad: np.ndarray
    box: tuple[int, int, int, int]
    unit: Pair

    @property
    def size(self):
        top, left, bottom, right = self.box
        return _square((bottom - top + 1, right - left + 1))


def _positive_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose conv weights are positive and biases zero (every ReLU stays open)."""
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for module in clone.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.rand_like(module.weight) / fan_in + 0.5 / fan_in)
                if module.bias is not None:
                    module.bias.zero_()
    return clone


def empirical_receptive_field(model: nn.Module, input_size, unit: Pair | None = None,
                              positive_weights: bool = True, seed: int = 0) -> EmpiricalRF:
    """Receptive field measured by backpropagation: which input pixels change one output unit?

    Feeds a random positive input of ``input_size`` ((C, H, W) or (N, C, H, W); only the first image
    is used), sums the output channels at position ``unit`` (default: the centre of the output map),
    backpropagates, and returns the non-zero footprint of the input gradient. With
    ``positive_weights=True`` (default) a copy of the model with positive conv weights and zero
    biases is used, so no ReLU blocks the gradient; max pooling still sends the gradient only to the
    arg-max of each window, so its footprint is smaller than the analytic receptive field.
    """
    shape = _input_shape(input_size)
    net = _positive_copy(model) if positive_weights else model
    gen = torch.Generator().manual_seed(seed)
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = (torch.rand((1,) + shape[1:], generator=gen) + 0.5).to(device).requires_grad_(True)
    with eval_mode(net):
        out = net(x)
        if out.dim() != 4:
            raise ValueError(f"empirical_receptive_field needs a spatial output (N, C, H, W); got shape {tuple(out.shape)}")
        h, w = out.shape[2:]
        row, col = unit if unit is not None else (h // 2, w // 2)
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(f"unit {(row, col)} is outside the output map of size {(h, w)}")
        out[0, :, row, col].sum().backward()
    grad = to_numpy(x.grad[0].abs().sum(0))
    rows, cols = np.nonzero(grad)
    if rows.size == 0:
        raise ValueError("the gradient is zero everywhere: the output unit does not depend on the input "
                         "(dead ReLUs?); try positive_weights=True")
    box = (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))
    return EmpiricalRF(grad=grad, box=box, unit=(int(row), int(col)))


def effective_receptive_field(forward, images: torch.Tensor) -> torch.Tensor:
    """Effective receptive field (ERF) of the centre position of ``forward(images)``.

    ``forward`` maps images (N, C, H, W) to a map (N, K, h, w): a model, or one stage of an encoder
    (``lambda x: encoder(x)[2]``). With ``y = sum_k relu(out[:, k, h // 2, w // 2])`` the ERF is
    ``|dy / d input|`` summed over the input channels, averaged over the N images and normalised to
    sum 1: an (H, W) float tensor of non-negative weights (unitless). The model's weights get no
    ``.grad``. The ReLU keeps only channels that respond, so a layer whose outputs always sum to the
    same value (LayerNorm at initialisation) still gives a gradient.
    """
    if images.dim() != 4:
        raise ValueError(f"effective_receptive_field: expected images of shape (N, C, H, W), got "
                         f"{tuple(images.shape)}; add a batch axis with images[None]")
    x = images.detach().clone().requires_grad_(True)
    out = forward(x)
    if out.dim() != 4:
        raise ValueError(f"effective_receptive_field: forward must return a map (N, K, h, w), got shape "
                         f"{tuple(out.shape)}; pass a segmentation model or one encoder stage, not a classifier")
    h, w = out.shape[-2:]
    y = out[:, :, h // 2, w // 2].relu().sum()
    (grad,) = torch.autograd.grad(y, x)
    g = grad.abs().sum(1).mean(0)
    if g.sum() == 0:
        raise ValueError("effective_receptive_field: the centre position does not depend on the input (all "
                         "gradients are 0, e.g. every ReLU is closed); try other images or another stage")
    return g / g.sum()


def half_mass_radius(m: torch.Tensor) -> float:
    """Radius in pixels of the disc around the centre ``(H // 2, W // 2)`` of ``m`` (H, W) that holds
    half of its mass (``m`` non-negative, e.g. from :func:`effective_receptive_field`).

    A single bright centre pixel gives 0.0; a flat 65x65 map gives about 26 px.
    """
    if m.dim() != 2:
        raise ValueError(f"half_mass_radius: expected a 2-D map (H, W), got shape {tuple(m.shape)}")
    if (m < 0).any() or m.sum() <= 0:
        raise ValueError("half_mass_radius: the map must be non-negative with a positive sum (a weight per pixel)")
    h, w = m.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    r = ((yy - h // 2) ** 2 + (xx - w // 2) ** 2).float().sqrt().flatten()
    order = r.argsort(stable=True)
    cum = m.flatten()[order].cumsum(0)
    return r[order][int((cum >= 0.5 * cum[-1]).nonzero()[0])].item()


__all__ = ["receptive_field", "empirical_receptive_field", "rf_after_layer", "layer_params", "ReceptiveField",
           "EmpiricalRF", "LayerRF", "effective_receptive_field", "half_mass_radius", "POINTWISE", "WINDOWED"]
