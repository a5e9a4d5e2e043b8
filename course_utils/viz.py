"""Plotting helpers used across the notebooks: image grids, training curves, label maps."""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .core import to_numpy
from .voc import IGNORE_INDEX, VOC_CLASSES, VOC_COLORMAP


def set_style(dpi: int = 72) -> None:
    """Modest figure resolution so notebooks with committed outputs stay small (< 3 MB)."""
    plt.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "image.interpolation": "nearest",
                         "axes.titlesize": 10})


def to_numpy_image(image) -> np.ndarray:
    """Turn an image into something ``imshow`` accepts.

    Accepts a NumPy array or torch tensor of shape (H, W), (H, W, C) or (C, H, W) with C in {1, 3}.
    Returns (H, W) or (H, W, 3). Float images are left as they are (imshow clips to [0, 1]).
    """
    image = to_numpy(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.transpose(image, (1, 2, 0))
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"expected an image of shape (H, W), (H, W, 3) or (3, H, W); got {image.shape}.")
    return image


def show_images(images: Sequence, titles: Sequence[str] | None = None, ncols: int | None = None,
                cmap: str | None = "gray", size: float = 2.5, suptitle: str | None = None,
                axis: bool = False, vmin: float | None = None, vmax: float | None = None) -> plt.Figure:
    """Show images in a grid, one title per image.

    images: sequence of (H, W), (H, W, 3) or (3, H, W) arrays/tensors (may differ in size).
    titles: optional, same length as ``images``. ``cmap`` applies to 2-D images only.
    size: inches per panel. Returns the matplotlib Figure.
    """
    images = list(images)
    if not images:
        raise ValueError("show_images got no images; pass a non-empty list.")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles; give one title per image.")
    ncols = min(ncols or len(images), len(images))
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(images):
            img = to_numpy_image(images[k])
            ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(titles[k])
        if not axis or k >= len(images):
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_history(history: Mapping[str, Sequence[float]], size: float = 3.5) -> plt.Figure:
    """Plot training curves: one panel per metric, train and val curves together.

    history: e.g. {"train_loss": [...], "val_loss": [...], "val_mean_iou": [...]}, one value per epoch.
    Keys are grouped by the part after the first "_" ("train_loss" and "val_loss" share a panel).
    Returns the Figure.
    """
    if not history:
        raise ValueError("plot_history got an empty history; train for at least one epoch first.")
    panels: dict[str, list[str]] = {}
    for key in history:
        metric = key.split("_", 1)[1] if "_" in key else key
        panels.setdefault(metric, []).append(key)
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size * 0.8), squeeze=False)
    for ax, (metric, keys) in zip(axes.flat, panels.items()):
        for key in keys:
            values = list(history[key])
            ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def colorize_mask(mask, palette: np.ndarray = VOC_COLORMAP) -> np.ndarray:
    """Colour a label map with the VOC palette.

    mask: (H, W) integer array/tensor of class indices (0..20, and 255 for void).
    Returns (H, W, 3) uint8 RGB. Indices must lie in [0, len(palette)).
    """
    mask = to_numpy(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D label map (H, W); got shape {mask.shape}.")
    if mask.size and (mask.min() < 0 or mask.max() >= len(palette)):
        raise ValueError(f"label values must lie in [0, {len(palette) - 1}]; found {mask.min()}..{mask.max()}.")
    return palette[mask.astype(np.int64)]


def overlay_mask(image, mask, alpha: float = 0.5, palette: np.ndarray = VOC_COLORMAP) -> np.ndarray:
    """Blend a colour-coded label map over an RGB image.

    image: (H, W, 3) uint8 or float in [0, 1]; mask: (H, W) class indices.
    Background (0) and void (255) pixels keep the image's colour. Returns (H, W, 3) float in [0, 1].
    """
    image = to_numpy_image(image).astype(np.float64)
    if image.max() > 1.0:
        image = image / 255.0
    if image.ndim != 3:
        raise ValueError(f"overlay_mask needs an RGB image (H, W, 3); got shape {image.shape}.")
    colours = colorize_mask(mask, palette).astype(np.float64) / 255.0
    if colours.shape[:2] != image.shape[:2]:
        raise ValueError(f"image is {image.shape[:2]} but mask is {colours.shape[:2]}; they must match.")
    m = to_numpy(mask)
    fg = ((m != 0) & (m != IGNORE_INDEX))[..., None]
    return np.where(fg, (1 - alpha) * image + alpha * colours, image)


def mask_legend(fig: plt.Figure, labels, names: Sequence[str] | Mapping[int, str] = VOC_CLASSES,
                palette: np.ndarray = VOC_COLORMAP, ncol: int = 6, extra: Iterable = ()):
    """Name the colour of each class under ``fig``, so that colour is not the only cue (colour-blind readers).

    labels: the label values to name (ints), or label maps (one (H, W) array/tensor or a list of them),
    every value of which is named; each value once, in increasing order. Void (255) is "void (not scored)".
    A ``{label: name}`` mapping names exactly those labels with those names.
    names: the class names, indexed by label (default VOC's 21) or a ``{label: name}`` mapping.
    extra: more legend handles (matplotlib artists with a label) put after the classes.
    Makes room below the axes for the legend's rows and returns the legend.
    """
    from matplotlib.patches import Patch

    if isinstance(labels, Mapping):
        labels, names = list(labels), labels
    values: set[int] = set()
    items = [labels] if hasattr(labels, "shape") else list(labels)
    for item in items:
        array = to_numpy(item) if not isinstance(item, (int, np.integer)) else np.asarray(item)
        values |= {int(v) for v in np.unique(array)}
    lookup = dict(names) if isinstance(names, Mapping) else dict(enumerate(names))
    lookup.setdefault(IGNORE_INDEX, "void (not scored)")
    missing = sorted(v for v in values if v not in lookup)
    if missing:
        raise ValueError(f"label value(s) {missing} have no name: pass names= with a name for each "
                         f"(found names for {sorted(lookup)}).")
    bad = [v for v in values if not 0 <= v < len(palette)]
    if bad:
        raise ValueError(f"label value(s) {sorted(bad)} are outside the palette (0..{len(palette) - 1}).")
    handles = [Patch(facecolor=palette[v] / 255, edgecolor="0.4", label=lookup[v]) for v in sorted(values)]
    handles += list(extra)
    if not handles:
        raise ValueError("nothing to name: labels held no value and extra no handle.")
    rows = -(-len(handles) // ncol)
    fig.subplots_adjust(bottom=(0.1 + 0.22 * rows) / fig.get_figheight())   # inches of room, as a fraction
    return fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), ncol), fontsize=8, frameon=False)
