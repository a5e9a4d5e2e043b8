"""PASCAL VOC 2012: class names, palette and (see below) the data pipeline of the exercise.

Masks in VOC are palette PNGs: each pixel stores a class index 0..20, or 255 ("void") on
object borders and hard regions. ``VOC_COLORMAP[i]`` is the RGB colour used for index ``i``.
"""
from __future__ import annotations

import numpy as np

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
