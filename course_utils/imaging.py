"""Classical image processing used in notebooks 01 and 02: Bayer mosaic, demosaicing, 2-D filtering.

Notebooks write every idea out by hand first; these are the tidy versions that later notebooks reuse.

Conventions
-----------
- Images are NumPy arrays: grey (H, W) or colour (H, W, 3), channel last. Functions that compute
  return float64; they accept any real dtype (uint8 included) and keep its units (0..255 stays 0..255).
- ``correlate2d`` is the lecture's formula ``y[i, j] = sum_u sum_v x[i + u, j + v] F[u, v]`` with the
  kernel centred on the output pixel; ``convolve2d`` is the true convolution (the kernel flipped).
  Both pad with zeros and return an output the size of the input, like SciPy's ``mode="same"``.
- Difference kernels are written for ``correlate2d`` (and for ``torch.nn.functional.conv2d``, which
  also correlates). Axis "x" runs along columns (index j), axis "y" along rows (index i).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from .core import to_numpy

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
"""The four 2x2 Bayer layouts, read row by row from the top-left pixel: "RGGB" = R G / G B."""

_CHANNEL = {"R": 0, "G": 1, "B": 2}

# Bilinear demosaicing kernels (for convolution with the sparse plane of one colour).
DEMOSAIC_KERNEL_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=np.float64) / 4
"""Fills a missing green value with the mean of its 4 green neighbours (keeps measured ones)."""
DEMOSAIC_KERNEL_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 4
"""Fills a missing red/blue value with the mean of its 2 or 4 red/blue neighbours."""


# ----------------------------------------------------------------------------------- checks

def _as_float_array(x, name: str, ndims: tuple[int, ...], what: str) -> np.ndarray:
    arr = to_numpy(x)  # torch tensors too
    if arr.ndim not in ndims:
        hint = (" For a colour image, filter each channel separately: img[..., c] for c in 0, 1, 2."
                if name == "image" and arr.ndim == 3 else "")
        raise ValueError(f"{name} must be {what}; got an array with {arr.ndim} dimension(s), "
                         f"shape {arr.shape}.{hint}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one pixel.")
    return arr.astype(np.float64, copy=False)


def _check_pattern(pattern: str) -> str:
    if not isinstance(pattern, str) or pattern.upper() not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {pattern!r}; use one of {', '.join(BAYER_PATTERNS)}.")
    return pattern.upper()


def _check_odd_size(size, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {type(size).__name__} {size!r}.")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"{name} must be a positive odd number (3, 5, 7, ...) so the kernel has a "
                         f"centre pixel; got {size}.")
    return int(size)


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


# ----------------------------------------------------------------------------------- Bayer

def bayer_masks(shape: tuple[int, int], pattern: str = "RGGB") -> np.ndarray:
    """Which colour each sensor pixel measures.

    shape: (H, W) of the sensor. pattern: one of ``BAYER_PATTERNS``, the 2x2 tile read row by row.
    Returns a bool array (H, W, 3): ``masks[i, j, c]`` is True where pixel (i, j) sits under a
    filter of colour c (0 = R, 1 = G, 2 = B). Exactly one channel is True per pixel.
    """
    pattern = _check_pattern(pattern)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) with H, W >= 1; got {shape}.")
    h, w = int(shape[0]), int(shape[1])
    masks = np.zeros((h, w, 3), dtype=bool)
    for k, letter in enumerate(pattern):
        di, dj = divmod(k, 2)
        masks[di::2, dj::2, _CHANNEL[letter]] = True
    return masks


def bayer_mosaic(rgb, pattern: str = "RGGB") -> np.ndarray:
    """What a Bayer sensor records: one colour per pixel, a single 2-D matrix.

    rgb: (H, W, 3) image, any real dtype. Returns (H, W) with the same dtype as ``rgb``:
    ``mosaic[i, j] = rgb[i, j, c]`` where c is the colour of the filter over pixel (i, j).
    """
    arr = to_numpy(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) colour image; got shape {arr.shape}. "
                         f"A channel-first tensor (3, H, W) needs .permute(1, 2, 0) first.")
    masks = bayer_masks(arr.shape[:2], pattern)
    return np.where(masks, arr, 0).sum(axis=2).astype(arr.dtype)


def demosaic_bilinear(mosaic, pattern: str = "RGGB") -> np.ndarray:
    """Bilinear demosaicing: rebuild (H, W, 3) colour from a Bayer mosaic by local averaging.

    Each colour plane keeps its measured pixels and fills the others with the mean of the nearest
    measured pixels of that colour (2 or 4 of them). Written as a normalised convolution:
    ``conv(sparse_plane, k) / conv(mask, k)`` with ``DEMOSAIC_KERNEL_G`` / ``DEMOSAIC_KERNEL_RB``.
    Away from the border this equals convolving the sparse plane with the kernel; at the border
    it averages only the neighbours that exist (zero padding would darken the edge).

    mosaic: (H, W) real array (H, W >= 2). pattern: the layout the mosaic was taken with.
    Returns float64 (H, W, 3) in the units of ``mosaic``.
    """
    m = _as_float_array(mosaic, "mosaic", (2,), "a 2-D (H, W) Bayer mosaic")
    if min(m.shape) < 2:
        raise ValueError(f"mosaic must be at least 2x2 to hold one Bayer tile; got shape {m.shape}.")
    masks = bayer_masks(m.shape, pattern)
    out = np.empty(m.shape + (3,), dtype=np.float64)
    for c in range(3):
        kernel = DEMOSAIC_KERNEL_G if c == 1 else DEMOSAIC_KERNEL_RB
        mask = masks[..., c].astype(np.float64)
        out[..., c] = convolve2d(m * mask, kernel) / convolve2d(mask, kernel)
    return out


# ----------------------------------------------------------------------------------- filtering

def correlate2d(image, kernel) -> np.ndarray:
    """2-D cross-correlation with zero padding, output the size of the input.

    ``out[i, j] = sum_u sum_v image[i + u - a, j + v - b] * kernel[u, v]`` with (a, b) the centre of
    the kernel and pixels outside the image taken as 0. This is the lecture's convolution formula
    (and what ``torch.nn.functional.conv2d`` computes); it equals
    ``scipy.signal.correlate2d(image, kernel, mode="same")``.

    image: (H, W) real. kernel: (h, w) real with h and w odd. Returns float64 (H, W).
    """
    x = _as_float_array(image, "image", (2,), "a 2-D (H, W) grey image")
    k = _as_float_array(kernel, "kernel", (2,), "a 2-D (h, w) kernel")
    _check_odd_size(k.shape[0], "kernel height")
    _check_odd_size(k.shape[1], "kernel width")
    kh, kw = k.shape
    a, b = kh // 2, kw // 2
    padded = np.pad(x, ((a, a), (b, b)))
    h, w = x.shape
    out = np.zeros_like(x)
    for u in range(kh):  # one shifted copy of the image per kernel entry
        for v in range(kw):
            if k[u, v] != 0:
                out += k[u, v] * padded[u:u + h, v:v + w]
    return out


def convolve2d(image, kernel) -> np.ndarray:
    """True 2-D convolution with zero padding, output the size of the input.

    The kernel is flipped in both axes, then correlated: ``convolve2d(x, k) == correlate2d(x, k[::-1, ::-1])``.
    Equals ``scipy.signal.convolve2d(image, kernel, mode="same")``.

    image: (H, W) real. kernel: (h, w) real with h and w odd. Returns float64 (H, W).
    """
    k = _as_float_array(kernel, "kernel", (2,), "a 2-D (h, w) kernel")
    return correlate2d(image, k[::-1, ::-1])


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Sampled 2-D Gaussian, normalised to sum 1.

    ``k[u, v] ~ exp(-((u - c)^2 + (v - c)^2) / (2 sigma^2))`` for u, v in 0..size-1, c = size // 2.
    size: odd int >= 1 (pixels). sigma: standard deviation in pixels, > 0. Returns float64 (size, size).
    """
    size = _check_odd_size(size)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number of pixels; got {sigma}.")
    r = np.arange(size) - size // 2
    g = np.exp(-(r ** 2) / (2.0 * sigma ** 2))
    k = np.outer(g, g)
    return k / k.sum()


def difference_kernel(kind: Literal["forward", "backward", "central"] = "central",
                      axis: Literal["x", "y"] = "x") -> np.ndarray:
    """Finite-difference kernel for a first derivative (step 1 pixel), to use with ``correlate2d``.

    forward: I[j+1] - I[j];  backward: I[j] - I[j-1];  central: (I[j+1] - I[j-1]) / 2.
    axis "x" differentiates along columns (returns shape (1, 3)), "y" along rows (shape (3, 1)).
    The kernels are padded to 3 taps so they have a centre pixel.
    """
    rows = {"forward": [0.0, -1.0, 1.0], "backward": [-1.0, 1.0, 0.0], "central": [-0.5, 0.0, 0.5]}
    if kind not in rows:
        raise ValueError(f"kind must be one of {', '.join(rows)}; got {kind!r}.")
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' (along columns) or 'y' (along rows); got {axis!r}.")
    k = np.array([rows[kind]])
    return k if axis == "x" else k.T.copy()


def laplacian_kernel(diagonals: bool = False) -> np.ndarray:
    """3x3 Laplacian (sum of second differences), symmetric, sums to 0.

    diagonals=False: the lecture's [[0, 1, 0], [1, -4, 1], [0, 1, 0]] (4 neighbours).
    diagonals=True: [[1, 1, 1], [1, -8, 1], [1, 1, 1]] (8 neighbours). Returns float64 (3, 3).
    """
    if diagonals:
        k = np.ones((3, 3))
        k[1, 1] = -8.0
        return k
    return np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def sobel_kernel(axis: Literal["x", "y"] = "x") -> np.ndarray:
    """3x3 Sobel kernel (central difference smoothed across), for ``correlate2d``.

    axis "x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] (responds to vertical edges); "y": its transpose.
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' (along columns) or 'y' (along rows); got {axis!r}.")
    k = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0])
    return k if axis == "x" else k.T.copy()


# ----------------------------------------------------------------------------------- noise, PSNR

def add_gaussian_noise(image, sigma: float, rng=None, clip: tuple[float, float] | None = (0.0, 1.0)) -> np.ndarray:
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` to every value.

    image: (H, W) or (H, W, C) real (for the default clip, float in [0, 1]). sigma >= 0, in image units.
    rng: a ``np.random.Generator`` or a seed (None: fresh randomness). clip: (low, high) to clip the
    result to, or None to keep it unclipped. Returns float64 of the same shape.
    """
    x = _as_float_array(image, "image", (2, 3), "an (H, W) or (H, W, C) image")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be >= 0 (the noise standard deviation); got {sigma}.")
    noisy = x + _rng(rng).normal(0.0, sigma, size=x.shape)
    return noisy if clip is None else np.clip(noisy, clip[0], clip[1])


def add_salt_pepper(image, amount: float, rng=None, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Spike noise: a fraction ``amount`` of the pixels becomes ``low`` (pepper) or ``high`` (salt).

    image: (H, W) or (H, W, C) real. For a colour image the whole pixel (all channels) is hit.
    amount in [0, 1]: exactly round(amount * H * W) pixels change, half to ``low`` and half to ``high``.
    rng: a ``np.random.Generator`` or a seed. Returns float64 of the same shape.
    """
    x = _as_float_array(image, "image", (2, 3), "an (H, W) or (H, W, C) image").copy()
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount is a fraction of pixels and must lie in [0, 1]; got {amount}.")
    h, w = x.shape[:2]
    n = int(round(amount * h * w))
    idx = _rng(rng).permutation(h * w)[:n]
    rows, cols = np.unravel_index(idx, (h, w))
    half = n // 2
    x[rows[:half], cols[:half]] = low
    x[rows[half:], cols[half:]] = high
    return x


def psnr(reference, test, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 * log10(data_range^2 / MSE)``.

    reference, test: arrays of the same shape. data_range: the largest possible value minus the
    smallest (1.0 for float images in [0, 1], 255 for uint8). If None: 255 when ``reference`` is
    uint8, else 1.0. Returns inf when the images are identical. Higher is closer.
    """
    ref = np.asarray(reference)
    if data_range is None:
        data_range = 255.0 if ref.dtype == np.uint8 else 1.0
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0 (max minus min possible value); got {data_range}.")
    a = _as_float_array(ref, "reference", tuple(range(1, 5)), "an image")
    b = _as_float_array(test, "test", tuple(range(1, 5)), "an image")
    if a.shape != b.shape:
        raise ValueError(f"reference and test must have the same shape; got {a.shape} and {b.shape}.")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range ** 2 / mse))
