"""Forward and backward passes of CNN layers, written by hand with tensor operations (no autograd).

Each ``*_forward`` returns ``(out, cache)``; the matching ``*_backward`` takes the upstream
gradient ``dout`` (same shape as ``out``) and the cache, and returns the gradients of the loss with
respect to each input. Shapes follow PyTorch: images are (N, C, H, W) = (batch, channels, height,
width); convolution weights are (F, C, HH, WW) = (filters, input channels, kernel height, width).
Every gradient has the shape of the tensor it belongs to, in units of the loss per unit of that
tensor. ``numeric_gradient`` gives a centred finite difference to check any backward against.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Cache = tuple


def _check_4d(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        found = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 4-D tensor of shape (N, C, H, W); found {found}. "
                         "Add a batch axis with x[None] or a channel axis with x[:, None].")


def _conv_geometry(x: torch.Tensor, w: torch.Tensor, stride: int, pad: int) -> tuple[int, int]:
    _check_4d("x", x)
    _check_4d("w", w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but w expects {w.shape[1]} (w is (F, C, HH, WW)); "
                         "they must agree.")
    if x.dtype != w.dtype:
        raise ValueError(f"x is {x.dtype} but w is {w.dtype}; they must have one dtype. Convert one, "
                         "e.g. w.to(x.dtype) (gradient checks want float64 for both).")
    if stride < 1 or pad < 0:
        raise ValueError(f"stride must be >= 1 and pad >= 0; found stride={stride}, pad={pad}.")
    h, wd = x.shape[2] + 2 * pad, x.shape[3] + 2 * pad
    hh, ww = w.shape[2], w.shape[3]
    if hh > h or ww > wd:
        raise ValueError(f"the kernel ({hh}x{ww}) is larger than the padded input ({h}x{wd}); "
                         "use a smaller kernel or more padding.")
    return 1 + (h - hh) // stride, 1 + (wd - ww) // stride


def _check_bias(b: torch.Tensor, w: torch.Tensor) -> None:
    if not isinstance(b, torch.Tensor) or b.shape != (w.shape[0],):
        found = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
        raise ValueError(f"b must have shape ({w.shape[0]},), one bias per filter of w (w is (F, C, HH, WW)); "
                         f"found {found}. Use torch.zeros({w.shape[0]}) for no bias.")


def _check_dout(dout: torch.Tensor, expected: tuple[int, ...], layer: str) -> None:
    """A backward's upstream gradient must have the shape of the forward's output (else it would broadcast)."""
    if not isinstance(dout, torch.Tensor) or tuple(dout.shape) != tuple(expected):
        found = tuple(dout.shape) if isinstance(dout, torch.Tensor) else type(dout).__name__
        raise ValueError(f"dout for the {layer} backward must have the shape of the forward's output, "
                         f"{tuple(expected)}; found {found}. Pass the gradient of the loss with respect to "
                         "this layer's output, e.g. torch.randn(*out.shape) or the next layer's dx.")


def conv_forward_loops(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                       stride: int = 1, pad: int = 0) -> tuple[torch.Tensor, Cache]:
    """Convolution (cross-correlation, as in PyTorch) with explicit loops over outputs.

    x: (N, C, H, W); w: (F, C, HH, WW); b: (F,).
    Returns out: (N, F, H', W') with H' = 1 + (H + 2 pad - HH) // stride (same for W'), and a cache.
    """
    ho, wo = _conv_geometry(x, w, stride, pad)
    _check_bias(b, w)
    xp = F.pad(x, (pad, pad, pad, pad))
    n, f = x.shape[0], w.shape[0]
    hh, ww = w.shape[2], w.shape[3]
    out = x.new_zeros(n, f, ho, wo)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + hh, j * stride:j * stride + ww]  # (N, C, HH, WW)
            out[:, :, i, j] = (patch[:, None] * w[None]).sum(dim=(2, 3, 4)) + b  # (N, F)
    return out, (x, w, b, stride, pad)


def conv_backward_loops(dout: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward of :func:`conv_forward_loops`.

    dout: (N, F, H', W'). Returns dx: (N, C, H, W), dw: (F, C, HH, WW), db: (F,).
    Each output value out[n, f, i, j] used one input patch and all of w[f]: its gradient flows back
    to both, summed over every place they were used.
    """
    x, w, b, stride, pad = cache
    _check_dout(dout, (x.shape[0], w.shape[0], *_conv_geometry(x, w, stride, pad)), "convolution")
    xp = F.pad(x, (pad, pad, pad, pad))
    dxp = torch.zeros_like(xp)
    dw = torch.zeros_like(w)
    hh, ww = w.shape[2], w.shape[3]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + hh), slice(j * stride, j * stride + ww)
            g = dout[:, :, i, j]  # (N, F)
            dw += (g[:, :, None, None, None] * xp[:, None, :, rows, cols]).sum(dim=0)  # (F, C, HH, WW)
            dxp[:, :, rows, cols] += (g[:, :, None, None, None] * w[None]).sum(dim=1)  # (N, C, HH, WW)
    db = dout.sum(dim=(0, 2, 3))
    dx = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, db


def conv_forward_im2col(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                        stride: int = 1, pad: int = 0) -> tuple[torch.Tensor, Cache]:
    """Convolution as one matrix product: unfold (im2col) every patch into a column.

    x: (N, C, H, W); w: (F, C, HH, WW); b: (F,). Returns out: (N, F, H', W') and a cache.
    The columns are (N, C*HH*WW, H'*W'); out = w as (F, C*HH*WW) times the columns, plus b.
    """
    ho, wo = _conv_geometry(x, w, stride, pad)
    _check_bias(b, w)
    cols = F.unfold(x, w.shape[2:], padding=pad, stride=stride)  # (N, C*HH*WW, H'*W')
    out = w.reshape(w.shape[0], -1) @ cols + b[:, None]  # (N, F, H'*W')
    return out.reshape(x.shape[0], w.shape[0], ho, wo), (x, w, b, stride, pad, cols)


def conv_backward_im2col(dout: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward of :func:`conv_forward_im2col`.

    dout: (N, F, H', W'). Returns dx: (N, C, H, W), dw: (F, C, HH, WW), db: (F,).
    The matrix product's two gradients, then fold (col2im) adds each column back onto the pixels
    it came from (overlapping patches add up).
    """
    x, w, b, stride, pad, cols = cache
    _check_dout(dout, (x.shape[0], w.shape[0], *_conv_geometry(x, w, stride, pad)), "convolution")
    g = dout.reshape(dout.shape[0], dout.shape[1], -1)  # (N, F, H'*W')
    dw = (g @ cols.transpose(1, 2)).sum(dim=0).reshape(w.shape)  # (F, C*HH*WW) -> (F, C, HH, WW)
    dcols = w.reshape(w.shape[0], -1).T @ g  # (N, C*HH*WW, H'*W')
    dx = F.fold(dcols, x.shape[2:], w.shape[2:], padding=pad, stride=stride)  # (N, C, H, W)
    db = dout.sum(dim=(0, 2, 3))
    return dx, dw, db


def relu_forward(x: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    """ReLU, max(0, x), elementwise. x: any shape, e.g. (N, C, H, W). Returns out (same shape), cache."""
    return x.clamp(min=0), (x,)


def relu_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    """Backward of ReLU: dx = dout where x > 0, else 0 (at x == 0 the gradient is taken as 0,
    as PyTorch does). dout and dx have the shape of x."""
    (x,) = cache
    _check_dout(dout, tuple(x.shape), "ReLU")
    return dout * (x > 0).to(dout.dtype)


def maxpool_forward(x: torch.Tensor, size: int = 2, stride: int | None = None) -> tuple[torch.Tensor, Cache]:
    """Max pooling over size x size windows. x: (N, C, H, W).

    Returns out: (N, C, H', W') with H' = 1 + (H - size) // stride, and a cache. ``stride``
    defaults to ``size`` (windows that do not overlap).
    """
    _check_4d("x", x)
    stride = size if stride is None else stride
    if size < 1 or stride < 1:
        raise ValueError(f"size and stride must be >= 1; found size={size}, stride={stride}.")
    if size > x.shape[2] or size > x.shape[3]:
        raise ValueError(f"the pooling window ({size}x{size}) is larger than the input "
                         f"({x.shape[2]}x{x.shape[3]}); use a smaller window.")
    n, c, h, w = x.shape
    ho, wo = 1 + (h - size) // stride, 1 + (w - size) // stride
    cols = F.unfold(x.reshape(n * c, 1, h, w), size, stride=stride)  # (N*C, size*size, H'*W')
    out, arg = cols.max(dim=1)  # (N*C, H'*W'); arg: the window position of the maximum
    return out.reshape(n, c, ho, wo), (x.shape, size, stride, arg)


def maxpool_backward(dout: torch.Tensor, cache: Cache) -> torch.Tensor:
    """Backward of max pooling. dout: (N, C, H', W'). Returns dx: (N, C, H, W).

    Each window's gradient goes to the one input that was its maximum. Ties: when several inputs
    of a window share the maximum, the whole gradient goes to the first of them in row-major order,
    as PyTorch's ``max_pool2d`` does on the CPU (the max is not differentiable there; any split that sums to dout is a valid subgradient, and
    a finite difference across a tie gives half to each, so gradient checks use inputs without ties).
    Where windows overlap, an input that is the maximum of several windows sums their gradients.
    """
    (n, c, h, w), size, stride, arg = cache
    _check_dout(dout, (n, c, 1 + (h - size) // stride, 1 + (w - size) // stride), "max-pooling")
    g = dout.reshape(n * c, -1)  # (N*C, H'*W')
    dcols = g.new_zeros(n * c, size * size, g.shape[1])
    dcols.scatter_(1, arg[:, None], g[:, None])
    return F.fold(dcols, (h, w), size, stride=stride).reshape(n, c, h, w)


def batchnorm_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                      eps: float = 1e-5) -> tuple[torch.Tensor, Cache]:
    """Batch norm in training mode: each channel normalised by its batch mean and variance.

    x: (N, C, H, W); gamma, beta: (C,). Statistics over N, H, W (biased variance, as PyTorch
    uses to normalise). Returns out: (N, C, H, W) = gamma * x_hat + beta, and a cache.
    """
    _check_4d("x", x)
    if gamma.shape != (x.shape[1],) or beta.shape != (x.shape[1],):
        raise ValueError(f"gamma and beta must have shape ({x.shape[1]},), one value per channel of x; "
                         f"found {tuple(gamma.shape)} and {tuple(beta.shape)}.")
    mean = x.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)  # (1, C, 1, 1)
    inv_std = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * inv_std  # (N, C, H, W)
    out = gamma[None, :, None, None] * x_hat + beta[None, :, None, None]
    return out, (x_hat, inv_std, gamma)


def batchnorm_backward(dout: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward of :func:`batchnorm_forward`. dout: (N, C, H, W).

    Returns dx: (N, C, H, W), dgamma: (C,), dbeta: (C,). The mean and variance depend on every x
    of the channel, which gives the two correction terms:
    dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)), means over N, H, W.
    """
    x_hat, inv_std, gamma = cache
    _check_dout(dout, tuple(x_hat.shape), "batch-norm")
    dbeta = dout.sum(dim=(0, 2, 3))
    dgamma = (dout * x_hat).sum(dim=(0, 2, 3))
    dx_hat = dout * gamma[None, :, None, None]
    dx = inv_std * (dx_hat - dx_hat.mean(dim=(0, 2, 3), keepdim=True)
                    - x_hat * (dx_hat * x_hat).mean(dim=(0, 2, 3), keepdim=True))
    return dx, dgamma, dbeta


def numeric_gradient(f: Callable[[], torch.Tensor], x: torch.Tensor, dout: torch.Tensor,
                     h: float = 1e-5) -> torch.Tensor:
    """Centred finite difference of sum(f() * dout) with respect to ``x`` (changed in place, restored).

    f: a function of no arguments that reads ``x`` and returns a tensor shaped like ``dout``.
    h: the step, in the units of x. Returns a tensor shaped like x:
    (f(x + h e_i) - f(x - h e_i)) . dout / (2 h) for each entry i.
    Use float64: in float32 the rounding error of the difference swamps a small h.
    """
    if x.dtype != torch.float64:
        raise ValueError(f"numeric_gradient needs a float64 tensor (found {x.dtype}): rounding in float32 "
                         "makes the difference meaningless. Use x.double().")
    if not x.is_contiguous():
        raise ValueError("numeric_gradient changes x in place through a flat view, so x must be contiguous; "
                         "found a non-contiguous view (e.g. a transpose or a slice). Make xc = x.contiguous(), let f "
                         "read xc, and pass xc here.")
    shape = tuple(f().shape)
    if shape != tuple(dout.shape):
        raise ValueError(f"f() returns shape {shape} but dout has shape {tuple(dout.shape)}; they must agree "
                         "(dout weights each output of f). Make dout with torch.randn(*f().shape).")
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        plus = (f() * dout).sum().item()
        flat[i] = old - h
        minus = (f() * dout).sum().item()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """How far apart two gradients of one shape are, relative to their size: ||a - b|| / (||a|| + ||b||),
    Euclidean norms over all entries (0 = equal; 0 when both are all zero).

    A correct backward gives about 1e-9 or less in float64 against :func:`numeric_gradient` and about
    1e-14 against autograd; a bug gives 1e-2 or more. The norms, not the largest entrywise ratio: a finite
    difference has a small *absolute* error, which would dominate the ratio at entries near zero.
    """
    if a.shape != b.shape:
        raise ValueError(f"the two gradients have different shapes, {tuple(a.shape)} and {tuple(b.shape)}.")
    scale = (a.norm() + b.norm()).item()
    return 0.0 if scale == 0 else (a - b).norm().item() / scale
