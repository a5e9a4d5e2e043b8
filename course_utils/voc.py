"""PASCAL VOC 2012 facts: class names, palette, void label, on-disk layout, reading one sample.

NumPy and PIL only, so anything (plots, metrics, the generated dataset) can import it cheaply.

Masks in VOC are palette PNGs: each pixel stores a class index 0..20, or 255 ("void") on
object borders and hard regions. ``VOC_COLORMAP[i]`` is the RGB colour used for index ``i``.

The on-disk layout, real or generated, is always the one torchvision's ``VOCSegmentation`` reads::

    ROOT/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    ROOT/VOCdevkit/VOC2012/SegmentationClass/<id>.png        palette PNG, indices 0..20 and 255
    ROOT/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

Everywhere in the package, ``root`` means ROOT: the folder that *contains* ``VOCdevkit/``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
"""The 21 VOC class names, background first (index = class id)."""

NUM_CLASSES: int = len(VOC_CLASSES)
IGNORE_INDEX: int = 255
"""Mask value of void pixels: not counted by losses (``ignore_index``) or metrics."""


def _voc_colormap(n: int = 256) -> np.ndarray:
    """The standard VOC palette: index bits spread over the R, G, B high bits. Returns (n, 3) uint8."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


VOC_COLORMAP: np.ndarray = _voc_colormap()
"""(256, 3) uint8 array: the RGB colour of each palette index (0 black, 1 dark red, ..., 255 cream)."""

VOC_SUBDIR = Path("VOCdevkit") / "VOC2012"
"""Where the dataset lives below ``root``."""
GENERATED_MARKER = "GENERATED_BY_COURSE_UTILS.json"
"""File inside a generated dataset's VOC2012 folder; its presence marks the data as not real."""


def voc_folder(root: str | os.PathLike) -> Path:
    """``root/VOCdevkit/VOC2012``: the folder that holds JPEGImages, SegmentationClass, ImageSets."""
    return Path(root) / VOC_SUBDIR


def trainval_ids(root: str | os.PathLike) -> list[str]:
    """The image ids listed in ``ImageSets/Segmentation/trainval.txt`` (2913 for the real data), in file order."""
    split = voc_folder(root) / "ImageSets" / "Segmentation" / "trainval.txt"
    if not split.is_file():
        raise FileNotFoundError(
            f"no split file at {VOC_SUBDIR / 'ImageSets/Segmentation/trainval.txt'} below the root you gave "
            f"({Path(root).name!r}). `root` is the folder that CONTAINS VOCdevkit/ (what get_voc() returns), "
            "not the VOC2012 folder itself.")
    return split.read_text().split()


def voc_is_complete(root: str | os.PathLike) -> bool:
    """True when ``root`` holds a usable VOC2012 segmentation set (real or generated).

    Checks the split file ``ImageSets/Segmentation/trainval.txt`` and that its first and last ids
    have both a JPEG and a mask (cheap: it does not open every file).
    """
    voc = voc_folder(root)
    try:
        ids = trainval_ids(root)
    except FileNotFoundError:
        return False
    if not ids:
        return False
    return all((voc / "JPEGImages" / f"{i}.jpg").is_file() and (voc / "SegmentationClass" / f"{i}.png").is_file()
               for i in (ids[0], ids[-1]))


def is_generated(root: str | os.PathLike) -> bool:
    """True when the dataset under ``root`` was made by ``voc_generated.make_toy_voc`` (not real PASCAL VOC)."""
    return (voc_folder(root) / GENERATED_MARKER).is_file()


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A VOC mask as class indices: (H, W) uint8, 0..20 and 255. Refuses an RGB-saved mask."""
    with Image.open(path) as png:
        if png.mode not in ("P", "L"):
            raise ValueError(f"mask {Path(path).name} has mode {png.mode!r}; VOC masks are palette ('P') PNGs "
                             "that store class indices. Was it re-saved as RGB? Re-extract or regenerate the dataset.")
        return np.asarray(png)


def load_voc_sample(voc: str | os.PathLike, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one sample from a VOC2012 folder (``voc_folder(root)``): ``(image H×W×3 uint8 RGB, mask H×W uint8)``.

    The mask holds palette indices (0..20 classes, 255 void), not colours; grayscale JPEGs are
    returned with 3 identical channels.
    """
    voc = Path(voc)
    with Image.open(voc / "JPEGImages" / f"{image_id}.jpg") as im:
        image = np.asarray(im.convert("RGB"))
    mask = read_mask(voc / "SegmentationClass" / f"{image_id}.png")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"{image_id}: image is {image.shape[:2]} but mask is {mask.shape}; the files do not belong together.")
    return image, mask
