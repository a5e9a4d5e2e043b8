"""A generated stand-in for PASCAL VOC 2012, in the exact VOC on-disk layout.

Used when the real data is not on disk and cannot be downloaded (offline, CI). Each of the 20
classes has its own combination of shape, texture and hue, and no single cue is enough: a hue is
shared by two classes, a shape by four, a texture by five; so a network has to combine colour,
outline and pattern (and cope with distractors, occlusion and noise). Objects carry VOC's band of
void (255) pixels around their outlines.
"""
from __future__ import annotations

import colorsys
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
from PIL import Image

from .voc import GENERATED_MARKER, IGNORE_INDEX, VOC_COLORMAP, is_generated, voc_folder, voc_is_complete

TOY_VOC_IMAGES = 600
"""Default size of the generated dataset (train/val/test = 300/150/150 images), in FAST mode too:
big enough that a small UNet learns something in a few epochs, small enough to build in seconds."""
TOY_VOC_VERSION = 1
"""Bumped whenever the generator's output changes, so a cached generated dataset is rebuilt."""

_TOY_SHAPES = ("disk", "square", "triangle", "diamond", "ring")
_TOY_TEXTURES = ("solid", "stripes", "checker", "dots")
_TOY_SIZES = ((375, 500), (500, 375), (333, 500), (500, 333), (375, 500), (366, 500), (500, 500), (281, 500))
"""(height, width) pairs drawn for the toy images; VOC's typical sizes (most are 500 on the long side)."""


def toy_class_appearance(class_id: int) -> dict[str, Any]:
    """How class ``class_id`` (1..20) looks in the generated dataset: shape, texture, hue in [0, 1)."""
    if not 1 <= class_id <= 20:
        raise ValueError(f"class_id must be 1..20 (0 is background), got {class_id}.")
    k = class_id - 1
    return {"shape": _TOY_SHAPES[k % 5], "texture": _TOY_TEXTURES[k // 5], "hue": (k // 2) / 10}


def _hsv_rgb(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of ``shape`` of radius ``r`` in local (rotated, centred) coordinates u, v."""
    if shape == "disk":
        return u * u + v * v <= r * r
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * r
    if shape == "triangle":
        return (v <= 0.5 * r) & (v >= -r + np.sqrt(3.0) * np.abs(u))
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= r
    if shape == "ring":
        d2 = u * u + v * v
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "bar":  # distractor only: a long thin rotated rectangle
        return (np.abs(u) <= r) & (np.abs(v) <= 0.14 * r)
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Float weight in [0, 1] per pixel: 1 = primary colour, 0 = secondary (darker) colour."""
    period = 0.7 * r
    if texture == "solid":
        return np.ones_like(u)
    if texture == "stripes":
        return (np.floor(u / (0.5 * period)) % 2 == 0).astype(np.float32)
    if texture == "checker":
        return ((np.floor(u / (0.6 * period)) + np.floor(v / (0.6 * period))) % 2 == 0).astype(np.float32)
    if texture == "dots":
        du = (u / period) % 1.0 - 0.5
        dv = (v / period) % 1.0 - 0.5
        return (du * du + dv * dv > 0.09).astype(np.float32)
    raise ValueError(f"unknown texture {texture!r}")


def _draw(image: np.ndarray, label: np.ndarray | None, value: int, shape: str, texture: str,
          colour: np.ndarray, centre: tuple[float, float], r: float, angle: float) -> None:
    """Paint one object into ``image`` (H, W, 3 float32) and, if given, its class into ``label``."""
    h, w = image.shape[:2]
    cy, cx = centre
    y0, y1 = max(int(cy - r - 1), 0), min(int(cy + r + 2), h)
    x0, x1 = max(int(cx - r - 1), 0), min(int(cx + r + 2), w)
    if y0 >= y1 or x0 >= x1:
        return
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u, v = c * dx + s * dy, c * dy - s * dx
    inside = _shape_mask(shape, u, v, r)
    weight = _texture(texture, u[inside], v[inside], r)[:, None]
    image[y0:y1, x0:x1][inside] = weight * colour + (1 - weight) * (0.4 * colour)
    if label is not None:
        label[y0:y1, x0:x1][inside] = value


def _toy_sample(rng: np.random.Generator, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One generated image (H, W, 3 uint8) and its mask (H, W uint8 in {0..20, 255})."""
    H, W = _TOY_SIZES[rng.integers(len(_TOY_SIZES))]
    h, w = H // 2, W // 2  # drawn at half size, then upsampled: soft edges, 4x less work
    # background: a smooth two-colour gradient of low saturation (class 0)
    c0 = _hsv_rgb(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.3, 0.9))
    c1 = _hsv_rgb(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.3, 0.9))
    horizontal = rng.random() < 0.5
    t = np.linspace(0, 1, w if horizontal else h, dtype=np.float32)
    ramp = (t[None, :] if horizontal else t[:, None])[..., None]
    image = np.broadcast_to(c0 * (1 - ramp) + c1 * ramp, (h, w, 3)).astype(np.float32)
    label = np.zeros((h, w), np.uint8)
    short = min(h, w)
    # distractors (background): bars and blobs of any colour and any texture
    for _ in range(rng.integers(1, 5)):
        shape = "bar" if rng.random() < 0.7 else "disk"
        r = short * (rng.uniform(0.15, 0.4) if shape == "bar" else rng.uniform(0.03, 0.07))
        colour = _hsv_rgb(rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.4, 1.0))
        _draw(image, None, 0, shape, _TOY_TEXTURES[rng.integers(4)], colour,
              (rng.uniform(0, h), rng.uniform(0, w)), r, rng.uniform(0, np.pi))
    # objects: 1 to 4, later ones occlude earlier ones
    for _ in range(rng.integers(1, 5)):
        cls = int(rng.integers(1, 21))
        look = toy_class_appearance(cls)
        r = short * rng.uniform(0.12, 0.32)
        colour = _hsv_rgb(look["hue"] + rng.uniform(-0.02, 0.02), rng.uniform(0.55, 0.95), rng.uniform(0.55, 1.0))
        centre = (rng.uniform(0.5 * r, h - 0.5 * r), rng.uniform(0.5 * r, w - 0.5 * r))
        _draw(image, label, cls, look["shape"], look["texture"], colour, centre, r, rng.uniform(0, 2 * np.pi))
    image = cv2.resize(image, (W, H), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (W, H), interpolation=cv2.INTER_NEAREST)
    h, w = H, W
    # sensor noise: a random window of a noise field shared by the whole dataset
    oy, ox = rng.integers(0, noise.shape[0] - h + 1), rng.integers(0, noise.shape[1] - w + 1)
    image += noise[oy:oy + h, ox:ox + w]
    image = np.clip(image, 0, 255).astype(np.uint8)
    # VOC marks a band of "void" (255) around every object outline: about 5 pixels wide
    edge = np.zeros((h, w), np.uint8)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    edge = cv2.dilate(edge, np.ones((5, 5), np.uint8))
    label[edge.astype(bool)] = IGNORE_INDEX
    return image, label


def _palette_png(mask: np.ndarray, path: Path) -> None:
    png = Image.fromarray(mask, mode="P")
    png.putpalette(VOC_COLORMAP.reshape(-1).tolist())
    png.save(path, compress_level=1)


def make_toy_voc(root: str | os.PathLike, n_images: int, seed: int = 0) -> Path:
    """Generate a PASCAL-VOC-2012-like segmentation dataset of ``n_images`` images under ``root``.

    The layout is exactly VOC's, so every line of the pipeline (and torchvision's own
    ``VOCSegmentation``) runs unchanged on it::

        root/VOCdevkit/VOC2012/JPEGImages/toy_000000.jpg            RGB JPEG, 500x375 and other VOC sizes
        root/VOCdevkit/VOC2012/SegmentationClass/toy_000000.png     palette PNG, VOC colormap,
                                                                    indices 0..20 and a 255 void band
        root/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt
        root/VOCdevkit/VOC2012/GENERATED_BY_COURSE_UTILS.json       marks the data as generated

    Objects of all 20 classes, each with its own shape/texture/hue combination
    (:func:`toy_class_appearance`), 1 to 4 per image with occlusion, plus background distractors
    (bars, small blobs), blur and noise; every 40th image is a grayscale JPEG, as a few of VOC's are.
    Deterministic for a given ``(n_images, seed)``. Takes a few seconds for 600 images.

    Calling it again with the same arguments does nothing (the marker records them); different
    arguments rebuild the dataset. A real VOC dataset at ``root`` is never overwritten. The data is
    written to a temporary folder first and moved into place, so an interrupted run leaves nothing.
    Returns ``root`` as a Path.
    """
    if int(n_images) != n_images or n_images < 4:
        raise ValueError(f"n_images must be an integer >= 4 (one per split at least), got {n_images!r}.")
    n_images = int(n_images)
    root = Path(root)
    voc = voc_folder(root)
    meta = {"generator": "course_utils.voc_generated.make_toy_voc", "version": TOY_VOC_VERSION,
            "n_images": n_images, "seed": int(seed)}
    if _built_already(root, voc, meta):  # nothing to write: works on a read-only copy (the grader's sandbox)
        return root
    with _exclusive(root):  # two notebooks run in parallel (pytest -n 2) must not rebuild each other's data
        if not _built_already(root, voc, meta):
            _build_toy_voc(root, voc, n_images, seed, meta)
    return root


def _built_already(root: Path, voc: Path, meta: dict) -> bool:
    """True when ``voc`` holds a complete dataset generated with ``meta``; FileExistsError for real VOC."""
    if not voc.exists():
        return False
    if not is_generated(root):
        raise FileExistsError(f"{voc} already exists and is not a generated dataset (real VOC?). make_toy_voc "
                              "never overwrites it: pass another root, e.g. data_dir()/'toy-voc'.")
    try:
        return json.loads((voc / GENERATED_MARKER).read_text()) == meta and voc_is_complete(root)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``root/.build.lock`` (POSIX) while a dataset is checked or built there."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock, but the build is still written aside and moved into place
        yield
        return
    with open(root / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_toy_voc(root: Path, voc: Path, n_images: int, seed: int, meta: dict) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".toy-voc-", dir=root))
    try:
        out = tmp / "VOC2012"
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (out / sub).mkdir(parents=True)
        rng = np.random.default_rng(seed)
        noise = rng.normal(0, 6, size=(560, 560, 3)).astype(np.float32)
        ids = [f"toy_{i:06d}" for i in range(n_images)]
        for i, name in enumerate(ids):
            image, mask = _toy_sample(rng, noise)
            jpeg = Image.fromarray(image)
            if i % 40 == 7:
                jpeg = jpeg.convert("L")
            jpeg.save(out / "JPEGImages" / f"{name}.jpg", quality=90)
            _palette_png(mask, out / "SegmentationClass" / f"{name}.png")
        half = n_images // 2  # like VOC's own train/val lists (1464/1449 for the real data)
        sets = out / "ImageSets" / "Segmentation"
        (sets / "train.txt").write_text("\n".join(ids[:half]) + "\n")
        (sets / "val.txt").write_text("\n".join(ids[half:]) + "\n")
        (sets / "trainval.txt").write_text("\n".join(ids) + "\n")
        (out / GENERATED_MARKER).write_text(json.dumps(meta, indent=1) + "\n")
        if voc.exists():
            shutil.rmtree(voc)
        voc.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out, voc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


