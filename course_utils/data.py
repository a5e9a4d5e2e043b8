"""PASCAL VOC 2012: class names, palette and (see below) the data pipeline of the exercise.

Masks in VOC are palette PNGs: each pixel stores a class index 0..20, or 255 ("void") on
object borders and hard regions. ``VOC_COLORMAP[i]`` is the RGB colour used for index ``i``.
"""
from __future__ import annotations

import colorsys
import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .core import data_dir, env_flag, is_online

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


# ---------------------------------------------------------------------------------------------
# The data pipeline of the exercise (issue 6)
# ---------------------------------------------------------------------------------------------
# The on-disk layout, real or generated, is always the one torchvision's VOCSegmentation reads:
#   ROOT/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
#   ROOT/VOCdevkit/VOC2012/SegmentationClass/<id>.png        (palette PNG, indices 0..20 and 255)
#   ROOT/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt
# Everywhere below, ``root`` means ROOT: the folder that *contains* ``VOCdevkit/``.

VOC_SUBDIR = Path("VOCdevkit") / "VOC2012"
"""Where the dataset lives below ``root``."""
TOY_MARKER = "GENERATED_BY_COURSE_UTILS.json"
"""File inside a generated dataset's VOC2012 folder; its presence marks the data as not real."""
TOY_VOC_IMAGES = 600
"""Default size of the generated dataset (train/val/test = 300/150/150 images), in FAST mode too:
big enough that a small UNet learns something in a few epochs, small enough to build in seconds."""
TOY_VOC_VERSION = 1
"""Bumped whenever the generator's output changes, so a cached toy dataset is rebuilt."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_FRACTIONS = {"train": 0.5, "val": 0.25, "test": 0.25}
"""The lecture's variation: trainval shuffled, then 50 % train, 25 % val, 25 % test."""


def _shown(path: Path) -> str:
    """A path for printing in notebooks: relative to ``data_dir()`` when inside it, never absolute."""
    path = Path(path).resolve()
    try:
        rel = path.relative_to(data_dir())
        return "data_dir()" + ("" if str(rel) == "." else f"/{rel.as_posix()}")
    except ValueError:
        return path.name or str(path)


def voc_folder(root: str | os.PathLike) -> Path:
    """``root/VOCdevkit/VOC2012``: the folder that holds JPEGImages, SegmentationClass, ImageSets."""
    return Path(root) / VOC_SUBDIR


def voc_is_complete(root: str | os.PathLike) -> bool:
    """True when ``root`` holds a usable VOC2012 segmentation set (real or generated).

    Checks the split file ``ImageSets/Segmentation/trainval.txt`` and that its first and last ids
    have both a JPEG and a mask (cheap: it does not open every file).
    """
    voc = voc_folder(root)
    split = voc / "ImageSets" / "Segmentation" / "trainval.txt"
    if not split.is_file():
        return False
    ids = split.read_text().split()
    if not ids:
        return False
    return all((voc / "JPEGImages" / f"{i}.jpg").is_file() and (voc / "SegmentationClass" / f"{i}.png").is_file()
               for i in (ids[0], ids[-1]))


def is_generated(root: str | os.PathLike) -> bool:
    """True when the dataset under ``root`` was made by :func:`make_toy_voc` (not real PASCAL VOC)."""
    return (voc_folder(root) / TOY_MARKER).is_file()


# ------------------------------------------------------------------ the generated (toy) dataset
# Each of the 20 classes has its own combination of shape, texture and hue. No single cue is
# enough: a hue is shared by two classes, a shape by four, a texture by five; so a network has
# to combine colour, outline and pattern (and cope with distractors, occlusion and noise).
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
    import cv2

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
    from PIL import Image

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
    meta = {"generator": "course_utils.data.make_toy_voc", "version": TOY_VOC_VERSION,
            "n_images": n_images, "seed": int(seed)}
    with _exclusive(root):  # two notebooks run in parallel (pytest -n 2) must not rebuild each other's data
        if voc.exists():
            if not is_generated(root):
                raise FileExistsError(f"{voc} already exists and is not a generated dataset (real VOC?). make_toy_voc "
                                      "never overwrites it: pass another root, e.g. data_dir()/'toy-voc'.")
            try:
                if json.loads((voc / TOY_MARKER).read_text()) == meta and voc_is_complete(root):
                    return root
            except (OSError, ValueError):
                pass
        _build_toy_voc(root, voc, n_images, seed, meta)
    return root


@contextlib.contextmanager
def _exclusive(root: Path):
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
    from PIL import Image

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
        (out / TOY_MARKER).write_text(json.dumps(meta, indent=1) + "\n")
        if voc.exists():
            shutil.rmtree(voc)
        voc.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out, voc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ the lecture's variation
_ANNOUNCED: set[str] = set()


def _missing_dataset_error(root: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"No PASCAL VOC 2012 segmentation data at {voc_folder(root)} ({what}). Expected "
        "JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/trainval.txt there. Either download "
        "the real data with course_utils.data.download_voc(root) (about 2 GB), or generate the offline "
        "stand-in with course_utils.data.make_toy_voc(root, 600); get_voc() picks one for you.")


def voc_split_ids(ids: Sequence[str], split: str, seed: int = 0) -> list[str]:
    """The ids of one split of the lecture's variation: shuffle ``ids`` with ``seed``, cut 50/25/25 %.

    ``ids`` are sorted first, so the file order does not matter. For n ids: train gets n // 2,
    val gets n // 4, test the rest (2913 real images: 1456 / 728 / 729). The three splits are
    disjoint, cover all ids, and depend only on (ids, seed).
    """
    if split not in SPLIT_FRACTIONS:
        raise ValueError(f"split must be one of {sorted(SPLIT_FRACTIONS)}, got {split!r}.")
    ids = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train, n_val = len(ids) // 2, len(ids) // 4
    cut = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}[split]
    return [ids[i] for i in cut]


def load_voc_sample(voc: Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one sample from a VOC2012 folder: ``(image H×W×3 uint8 RGB, mask H×W uint8)``.

    The mask holds palette indices (0..20 classes, 255 void), not colours; grayscale JPEGs are
    returned with 3 identical channels.
    """
    from PIL import Image

    with Image.open(voc / "JPEGImages" / f"{image_id}.jpg") as im:
        image = np.asarray(im.convert("RGB"))
    with Image.open(voc / "SegmentationClass" / f"{image_id}.png") as png:
        if png.mode not in ("P", "L"):
            raise ValueError(f"mask {image_id}.png has mode {png.mode!r}; VOC masks are palette ('P') PNGs "
                             "that store class indices. Was it re-saved as RGB? Re-extract or regenerate the dataset.")
        mask = np.asarray(png)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"{image_id}: image is {image.shape[:2]} but mask is {mask.shape}; the files do not belong together.")
    return image, mask


def _apply(transform: Callable | None, image: np.ndarray, mask: np.ndarray) -> tuple[Any, Any]:
    if transform is None:
        return image, mask
    out = transform(image=image, mask=mask)
    image, mask = out["image"], out["mask"]
    if hasattr(mask, "long"):  # a torch tensor (ToTensorV2 keeps masks uint8): the loss wants int64
        mask = mask.long()
    elif isinstance(mask, np.ndarray):
        mask = mask.astype(np.int64)
    return image, mask


CACHE_SUBDIR = ".course-cache"
"""Folder below ``root`` for the fast path's cache files (safe to delete)."""


def _decode_small(voc: Path, image_id: str, short: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample and downscale it so that its short side is ``short`` px (never upscale).

    JPEG decoding uses PIL's ``draft`` (the decoder itself skips detail, 2-8x faster) down to at
    least twice the target, then area interpolation; the mask uses nearest-neighbour.
    """
    import cv2
    from PIL import Image

    with Image.open(voc / "JPEGImages" / f"{image_id}.jpg") as im:
        w, h = im.size
        im.draft("RGB", (max(1, w * 2 * short // min(w, h)), max(1, h * 2 * short // min(w, h))))
        image = np.asarray(im.convert("RGB"))
    with Image.open(voc / "SegmentationClass" / f"{image_id}.png") as png:
        if png.mode not in ("P", "L"):
            raise ValueError(f"mask {image_id}.png has mode {png.mode!r}; VOC masks are palette ('P') PNGs.")
        mask = np.asarray(png)
    scale = short / min(h, w)
    if scale >= 1:
        return np.asarray(load_voc_sample(voc, image_id)[0]), mask
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _preloaded(voc: Path, ids: list[str], short: int, cache: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The split's samples downscaled to short side ``short``, from the cache file or decoded now."""
    import hashlib

    marker = voc / TOY_MARKER
    stamp = marker.read_text() if marker.is_file() else "real"
    key = hashlib.md5(("\n".join(ids) + f"|{short}|{stamp}|v1").encode()).hexdigest()[:16]
    path = voc.parent.parent / CACHE_SUBDIR / f"voc2012_{len(ids)}x{short}px_{key}.npz"
    if cache and path.is_file():
        try:
            with np.load(path) as z:
                flat_i, flat_m, shapes = z["images"], z["masks"], z["shapes"]
            if len(shapes) == len(ids):
                return _unflatten(flat_i, flat_m, shapes)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    pairs = [_decode_small(voc, i, short) for i in ids]
    images, masks = [p[0] for p in pairs], [p[1] for p in pairs]
    if cache:
        shapes = np.array([m.shape for m in masks], dtype=np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")  # one per process: parallel runs never share it
        np.savez(tmp, images=np.concatenate([i.reshape(-1) for i in images]),
                 masks=np.concatenate([m.reshape(-1) for m in masks]), shapes=shapes)
        os.replace(tmp, path)
    return images, masks


def _unflatten(flat_i: np.ndarray, flat_m: np.ndarray, shapes: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    sizes = shapes[:, 0] * shapes[:, 1]
    ends = np.cumsum(sizes)
    images, masks = [], []
    for (h, w), end, n in zip(shapes.tolist(), ends.tolist(), sizes.tolist()):
        masks.append(flat_m[end - n:end].reshape(h, w))
        images.append(flat_i[3 * (end - n):3 * end].reshape(h, w, 3))
    return images, masks


class VOCVariation(Dataset):
    """The exercise's dataset: VOC 2012 ``trainval`` shuffled with ``seed`` and split 50/25/25 %.

    ``root`` is the folder that contains ``VOCdevkit/`` (real data or :func:`make_toy_voc`'s);
    ``split`` is "train", "val" or "test" (see :func:`voc_split_ids`). A PyTorch map-style dataset:

    - without ``transform``: ``ds[i]`` is ``(image H×W×3 uint8 RGB, mask H×W uint8)``, mask values
      0..20 and 255 (void);
    - with an Albumentations transform (e.g. :func:`voc_transforms`): whatever the transform
      returns for the image (a float tensor 3×64×64 with ToTensorV2) and the mask as int64.

    ``ds.ids`` lists the image ids, ``ds.kind`` is "real" or "generated".

    Fast path for small inputs: ``preload=80`` decodes every image of the split once, downscales it
    so its short side is 80 px (area interpolation; masks nearest), and keeps the uint8 arrays in
    memory, so an epoch never decodes a JPEG (the transform is the same and must work at any input
    size, as :func:`voc_transforms` does). With ``cache=True`` the arrays are also saved to
    ``root/.course-cache/`` and later runs load them in a fraction of a second. Memory: about
    26 kB per image at 80 px (76 MB for the 2913 real images).
    """

    def __init__(self, root: str | os.PathLike, split: str, transform: Callable | None = None, seed: int = 0,
                 *, preload: int | None = None, cache: bool = True):
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.seed = seed
        self.voc = voc_folder(self.root)
        if split not in SPLIT_FRACTIONS:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}.")
        if not voc_is_complete(self.root):
            raise _missing_dataset_error(self.root, "missing or incomplete")
        all_ids = (self.voc / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()
        self.ids = voc_split_ids(all_ids, split, seed)
        self.kind = "generated" if is_generated(self.root) else "real"
        if self.kind == "generated" and str(self.voc.resolve()) not in _ANNOUNCED:
            _ANNOUNCED.add(str(self.voc.resolve()))
            print(f"Note: {_shown(self.root)} holds a GENERATED stand-in for PASCAL VOC 2012 "
                  f"({len(all_ids)} images, same file layout), not the real photos.")
        self.preload = preload
        self._images: list[np.ndarray] | None = None
        self._masks: list[np.ndarray] | None = None
        if preload is not None:
            if int(preload) != preload or preload < 8:
                raise ValueError(f"preload is the short side in pixels to keep in memory (e.g. 80), got {preload!r}.")
            self._images, self._masks = _preloaded(self.voc, self.ids, int(preload), cache)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The untransformed sample ``index``: (H×W×3 uint8 image, H×W uint8 mask); from memory
        (already downscaled) when the dataset was built with ``preload``."""
        if self._images is not None:
            return self._images[index], self._masks[index]
        return load_voc_sample(self.voc, self.ids[index])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for the {self.split!r} split of {len(self)} images.")
        image, mask = self.load(index % len(self))
        return _apply(self.transform, image, mask)

    def __repr__(self) -> str:
        mem = f", preloaded at {self.preload} px" if self.preload else ""
        return (f"VOCVariation(split={self.split!r}, {len(self)} images, {self.kind} data at {_shown(self.root)}, "
                f"seed={self.seed}, transform={'yes' if self.transform is not None else 'none'}{mem})")


def voc_transforms(size: int = 64, train: bool = True, seed: int | None = None) -> "A.Compose":
    """The exercise's Albumentations pipeline: any VOC image + mask in, ``size``×``size`` tensors out.

    train: ``RandomResizedCrop`` (scale jitter: 25-100 % of the area, aspect 4:5-5:4, then resized to
    size×size), horizontal flip (p=0.5), mild ``ColorJitter`` (p=0.5).
    eval (``train=False``): deterministic: ``LongestMaxSize`` to ``size`` (no distortion, the whole
    image stays) and ``PadIfNeeded`` to a square, padding the image with 0 and the mask with 255
    (void), so padding is never scored as background.
    Both: masks resized with nearest-neighbour (labels are never blended), ImageNet normalisation,
    ``ToTensorV2``. Output: image float32 tensor 3×size×size; mask size×size (uint8 from
    Albumentations; :class:`VOCVariation` turns it into int64).
    seed: Albumentations 2 draws from its own random state, which ``torch.manual_seed``,
    ``np.random.seed`` and ``course_utils.seed`` do not touch: without a seed the augmentations differ
    on every run. An int makes them repeatable; ``pipeline.set_random_seed(n)`` restarts them later.
    """
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8 (pixels), got {size!r}.")
    size = int(size)
    nearest = cv2.INTER_NEAREST
    if train:
        steps = [
            A.RandomResizedCrop(size=(size, size), scale=(0.25, 1.0), ratio=(0.8, 1.25), mask_interpolation=nearest),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
        ]
    else:
        steps = [
            A.LongestMaxSize(max_size=size, mask_interpolation=nearest),
            A.PadIfNeeded(min_height=size, min_width=size, border_mode=cv2.BORDER_CONSTANT, fill=0,
                          fill_mask=IGNORE_INDEX),
        ]
    return A.Compose(steps + [A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()], seed=seed)


def get_voc(root: str | os.PathLike | None = None, *, toy_images: int = TOY_VOC_IMAGES) -> tuple[Path, str]:
    """Find PASCAL VOC 2012 for the exercise, whatever the machine: returns ``(root, kind)``.

    ``root`` (default ``data_dir()``) is where the real data lives or goes (``root/VOCdevkit/VOC2012``).
    1. Real data already at ``root``: returns ``(root, "real")``.
    2. Else, when online (not ``COURSE_OFFLINE=1`` and :func:`is_online`): :func:`download_voc`
       (about 2 GB), then ``(root, "real")``. A failed download falls through to 3 with a notice.
    3. Else the generated stand-in (:func:`make_toy_voc`, ``toy_images`` images, 600 by default, in
       FAST mode too) at ``root/toy-voc``, built once and reused, never mixed with the real data's
       place; prints a banner and returns ``(root/"toy-voc", "generated")``.
    With ``COURSE_OFFLINE=1`` it never touches the network. Pass the returned root to
    :class:`VOCVariation`.
    """
    root = Path(root) if root is not None else data_dir()
    if voc_is_complete(root) and not is_generated(root):
        return root, "real"
    if not env_flag("COURSE_OFFLINE") and is_online():
        try:
            download_voc(root)
            return root, "real"
        except (OSError, RuntimeError) as err:
            print(f"Could not download PASCAL VOC 2012 ({err}).\nFalling back to the generated dataset.")
    toy_root = root / "toy-voc"
    how = "built now" if not voc_is_complete(toy_root) else "built earlier, reused"
    make_toy_voc(toy_root, toy_images)
    bar = "=" * 78
    print(f"{bar}\nGENERATED DATA, NOT REAL PHOTOS: no PASCAL VOC 2012 here and no download "
          f"({'offline mode' if env_flag('COURSE_OFFLINE') else 'no network'}).\n"
          f"Using a generated stand-in with the same file layout: {toy_images} images of shapes with\n"
          f"class-specific colour/texture at {_shown(toy_root)} ({how}).\n"
          f"Every cell runs the same; scores are not comparable with real VOC.\n{bar}")
    return toy_root, "generated"


# ------------------------------------------------------------------ download
VOC_URLS: tuple[str, ...] = (
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
)
"""Where ``VOCtrainval_11-May-2012.tar`` is fetched from, in order: the official Oxford server
(often down for long spells), then the Oxford mirror that torchvision uses. Same file, same MD5."""
VOC_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
"""MD5 of ``VOCtrainval_11-May-2012.tar`` (1,999,639,040 bytes)."""
VOC_TAR_NAME = "VOCtrainval_11-May-2012.tar"


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    import hashlib

    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Download ``url`` into ``part``, continuing after the bytes already there when the server
    supports HTTP ranges (206); a server that ignores the range (200) makes it start again."""
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "course-utils"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # range beyond the end: the file is already complete
            return
        raise
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=VOC_TAR_NAME if not resumed else f"{VOC_TAR_NAME} (resumed)", leave=False) as bar:
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def _check_members(tar: "tarfile.TarFile", target: Path) -> None:
    """Refuse the whole archive if any member would land outside ``target`` or is a link/device."""
    base = target.resolve()
    for member in tar.getmembers():
        dest = (base / member.name).resolve()
        if member.name.startswith(("/", "\\")) or (dest != base and base not in dest.parents):
            raise RuntimeError(f"unsafe archive: member {member.name!r} would be written outside the "
                               "target folder; nothing was extracted. Delete the archive and download again.")
        if not (member.isfile() or member.isdir()):
            raise RuntimeError(f"unsafe archive: member {member.name!r} is a link or special file; "
                               "nothing was extracted. Delete the archive and download again.")


def _extract(archive: Path, root: Path) -> None:
    """Extract ``archive`` into a temporary folder under ``root`` and move ``VOCdevkit/VOC2012`` into
    place; an error at any point leaves ``root/VOCdevkit/VOC2012`` untouched."""
    import tarfile

    tmp = Path(tempfile.mkdtemp(prefix=".voc-extract-", dir=root))
    try:
        with tarfile.open(archive) as tar:
            _check_members(tar, tmp)
            try:
                tar.extractall(tmp, filter="data")
            except TypeError:  # Python < 3.10.12 / 3.11.4 has no filter argument; members were checked
                tar.extractall(tmp)
        src = voc_folder(tmp)
        if not voc_is_complete(tmp):
            raise RuntimeError(f"the archive has no complete {VOC_SUBDIR} (JPEGImages, SegmentationClass, "
                               "ImageSets/Segmentation/trainval.txt); is it the VOC 2012 trainval tar?")
        dest = voc_folder(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():  # an incomplete earlier attempt: replace it
            shutil.rmtree(dest)
        os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_voc(root: str | os.PathLike, urls: Sequence[str] = VOC_URLS, md5: str = VOC_MD5,
                 *, timeout: float = 30.0, keep_archive: bool = False) -> Path:
    """Download and extract PASCAL VOC 2012 trainval so that ``root/VOCdevkit/VOC2012`` exists.

    - Does nothing when the dataset is already complete at ``root`` (a generated one is replaced).
    - Tries each of ``urls`` in turn (the official server is often down), with a tqdm progress bar.
    - Keeps a partial download as ``root/VOCtrainval_11-May-2012.tar.part`` and resumes it where the
      server allows HTTP ranges (a re-run continues instead of starting again).
    - Verifies the MD5 before extracting; a mismatch deletes the file ("checksum" error after the
      last URL).
    - Extracts safely (a member that would land outside the target, or a link, rejects the archive)
      into a temporary folder and moves ``VOC2012`` into place only when complete, so an interrupted
      or corrupt download never leaves a half dataset.
    - Deletes the 2 GB archive afterwards unless ``keep_archive=True``.
    ``timeout`` is the socket timeout in seconds. Returns ``voc_folder(root)``. Raises RuntimeError
    naming every URL and why it failed when no URL gives a valid archive.
    """
    root = Path(root)
    dest = voc_folder(root)
    if voc_is_complete(root) and not is_generated(root):
        return dest
    if not urls:
        raise ValueError("urls is empty: give at least one address of VOCtrainval_11-May-2012.tar.")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / VOC_TAR_NAME
    part = root / (VOC_TAR_NAME + ".part")
    failures: list[str] = []
    if archive.exists() and _md5(archive) != md5:
        archive.unlink()
    for url in ([] if archive.exists() else urls):
        try:
            _fetch(url, part, timeout)
        except Exception as err:  # network errors of every kind: keep the part, try the next URL
            failures.append(f"{url}: {err}")
            continue
        got = _md5(part)
        if got == md5:
            os.replace(part, archive)
            break
        part.unlink()
        failures.append(f"{url}: checksum mismatch (MD5 {got}, expected {md5}); the file was deleted")
    if not archive.exists():
        raise RuntimeError("Could not download PASCAL VOC 2012:\n  " + "\n  ".join(failures) +
                           "\nCheck the network and run download_voc again (a partial download resumes), "
                           "or use make_toy_voc for the generated offline dataset.")
    try:
        _extract(archive, root)
    except Exception:
        archive.unlink(missing_ok=True)  # a bad archive would fail the same way next time
        raise
    if not keep_archive:
        archive.unlink()
    return dest


# ------------------------------------------------------------------ the fast path: whole batches
def _rrc_boxes(rng: np.random.Generator, hw: np.ndarray, scale: tuple[float, float],
               ratio: tuple[float, float], tries: int = 10) -> np.ndarray:
    """RandomResizedCrop boxes (y, x, h, w) for images of sizes ``hw`` (N, 2), torchvision's rule:
    area fraction ~ U(scale), log aspect ~ U(log ratio); first of ``tries`` that fits, else centre."""
    n = len(hw)
    H, W = hw[:, :1].astype(np.float64), hw[:, 1:].astype(np.float64)
    area = H * W * rng.uniform(*scale, size=(n, tries))
    r = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size=(n, tries)))
    w, h = np.rint(np.sqrt(area * r)), np.rint(np.sqrt(area / r))
    ok = (w > 0) & (h > 0) & (w <= W) & (h <= H)
    first = ok.argmax(1)
    rows = np.arange(n)
    h, w, ok = h[rows, first], w[rows, first], ok[rows, first]
    # fallback (no try fits): the largest centred crop with the aspect ratio clamped to ``ratio``
    aspect = np.clip(W[:, 0] / H[:, 0], *ratio)
    fw = np.where(W[:, 0] / H[:, 0] > aspect, np.rint(H[:, 0] * aspect), W[:, 0])
    fh = np.where(W[:, 0] / H[:, 0] > aspect, H[:, 0], np.rint(W[:, 0] / aspect))
    h, w = np.where(ok, h, fh).astype(np.int64), np.where(ok, w, fw).astype(np.int64)
    y = np.where(ok, np.floor(rng.random(n) * (hw[:, 0] - h + 1)), (hw[:, 0] - h) // 2).astype(np.int64)
    x = np.where(ok, np.floor(rng.random(n) * (hw[:, 1] - w + 1)), (hw[:, 1] - w) // 2).astype(np.int64)
    return np.stack([y, x, h, w], 1)


def _colour_matrices(rng: np.random.Generator, n: int, p: float, brightness: float, contrast: float,
                     saturation: float, hue: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image random brightness, saturation and hue as one 3x3 RGB matrix each (N, 3, 3), plus
    the contrast factors (N,): all four are linear maps of the colour, so they compose."""
    on = rng.random(n) < p
    b = np.where(on, rng.uniform(1 - brightness, 1 + brightness, n), 1.0)
    c = np.where(on, rng.uniform(1 - contrast, 1 + contrast, n), 1.0)
    s = np.where(on, rng.uniform(1 - saturation, 1 + saturation, n), 1.0)
    t = np.where(on, rng.uniform(-hue, hue, n), 0.0) * 2 * np.pi
    gray = np.array([0.299, 0.587, 0.114])
    # saturation: blend with the gray value; hue: rotate the chroma plane of YIQ by angle t
    sat = s[:, None, None] * np.eye(3) + (1 - s)[:, None, None] * np.tile(gray, (3, 1))
    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0] = 1
    rot[:, 1, 1] = rot[:, 2, 2] = np.cos(t)
    rot[:, 1, 2], rot[:, 2, 1] = -np.sin(t), np.sin(t)
    hue_m = np.linalg.inv(yiq) @ rot @ yiq
    return hue_m @ sat * b[:, None, None], c, on


class FastVOCLoader:
    """The fast path: batches like a ``DataLoader`` over a :class:`VOCVariation`, at about 10x the
    speed of per-sample Albumentations, for the 64x64 exercise.

    It keeps the split in memory (``preload`` px short side, see :class:`VOCVariation`) and applies
    the augmentation of :func:`voc_transforms` with the same parameters, written for whole batches:
    per image only a crop and one ``cv2.resize`` (image bilinear, mask nearest); then, for the whole
    batch at once, horizontal flips and the colour jitter (brightness, contrast, saturation, hue as
    one 3x3 matrix per image) fused with the ImageNet normalisation. Differences from the
    Albumentations pipeline: the jitter is applied in a fixed order and values are not clipped to
    0..255 between the colour steps. ``train=False`` is the deterministic eval transform
    (longest side to ``size``, void padding) and gives the same masks as ``voc_transforms(train=False)``.

    Yields ``(images, masks)``: float32 (N, 3, size, size) and int64 (N, size, size), 255 = void.
    ``shuffle`` defaults to ``train``; each epoch draws new crops from a generator seeded with ``seed``.
    """

    def __init__(self, dataset: VOCVariation, batch_size: int = 64, shuffle: bool | None = None,
                 train: bool = True, size: int = 64, drop_last: bool = False, seed: int = 0, preload: int = 80):
        if not isinstance(dataset, VOCVariation):
            raise TypeError(f"FastVOCLoader needs a VOCVariation, got {type(dataset).__name__}; for other "
                            "datasets use torch.utils.data.DataLoader with a transform.")
        if batch_size < 1 or size < 8:
            raise ValueError(f"batch_size must be >= 1 and size >= 8, got {batch_size} and {size}.")
        if dataset._images is None:
            dataset = VOCVariation(dataset.root, dataset.split, None, dataset.seed, preload=preload)
        self.dataset, self.batch_size, self.train, self.size = dataset, int(batch_size), train, int(size)
        self.shuffle = train if shuffle is None else shuffle
        self.drop_last = drop_last
        self.rng = np.random.default_rng(seed)
        self.hw = np.array([m.shape for m in dataset._masks], dtype=np.int64)
        self.mean = np.array(IMAGENET_MEAN) * 255
        self.std = np.array(IMAGENET_STD) * 255

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for k in range(len(self)):
            yield self._batch(order[k * self.batch_size:(k + 1) * self.batch_size])

    def _batch(self, idx: np.ndarray) -> tuple["torch.Tensor", "torch.Tensor"]:
        import cv2

        S, n = self.size, len(idx)
        images, masks = self.dataset._images, self.dataset._masks
        out_i = np.zeros((n, S, S, 3), np.uint8)
        out_m = np.full((n, S, S), IGNORE_INDEX, np.uint8)
        if self.train:
            boxes = _rrc_boxes(self.rng, self.hw[idx], (0.25, 1.0), (0.8, 1.25))
            flips = (self.rng.random(n) < 0.5).tolist()
            for j, (i, (y, x, h, w), flip) in enumerate(zip(idx.tolist(), boxes.tolist(), flips)):
                cv2.resize(images[i][y:y + h, x:x + w], (S, S), out_i[j], interpolation=cv2.INTER_LINEAR)
                cv2.resize(masks[i][y:y + h, x:x + w], (S, S), out_m[j], interpolation=cv2.INTER_NEAREST)
                if flip:
                    cv2.flip(out_i[j], 1, out_i[j])
                    cv2.flip(out_m[j], 1, out_m[j])
            colour, contrast, _ = _colour_matrices(self.rng, n, 0.5, 0.2, 0.2, 0.2, 0.02)
        else:
            for j, i in enumerate(idx.tolist()):
                h, w = self.hw[i].tolist()
                scale = S / max(h, w)
                nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
                top, left = (S - nh) // 2, (S - nw) // 2
                cv2.resize(images[i], (nw, nh), out_i[j, top:top + nh, left:left + nw], interpolation=cv2.INTER_LINEAR)
                cv2.resize(masks[i], (nw, nh), out_m[j, top:top + nh, left:left + nw], interpolation=cv2.INTER_NEAREST)
            colour, contrast = np.tile(np.eye(3), (n, 1, 1)), np.ones(n)
        # Everything after the crop is one affine map of the colour per image, y = A x + o:
        # colour matrix M, then contrast c around the mean gray g of M x, then (y - mean) / std.
        x = torch.from_numpy(out_i).permute(0, 3, 1, 2).reshape(n, 3, S * S).float()
        mean_rgb = x.mean(2).double().numpy()                            # (N, 3) before jitter
        gray = np.array([0.299, 0.587, 0.114])
        g = np.einsum("k,nkl,nl->n", gray, colour, mean_rgb)              # mean gray after M
        A = contrast[:, None, None] * colour / self.std[None, :, None]
        o = ((1 - contrast)[:, None] * g[:, None] - self.mean[None, :]) / self.std[None, :]
        images_t = torch.baddbmm(torch.from_numpy(o).float()[:, :, None], torch.from_numpy(A).float(), x)
        return images_t.reshape(n, 3, S, S), torch.from_numpy(out_m).long()


# ------------------------------------------------------------------ benchmark: python -m course_utils.data --benchmark
def _rate(run: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Median samples/s over ``repeats`` runs: (per second of wall time, per second of CPU time)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        n = run()
        wall.append(n / (time.perf_counter() - t))
        cpu.append(n / max(time.process_time() - c, 1e-9))
    return float(np.median(wall)), float(np.median(cpu))


def benchmark(root: str | os.PathLike | None = None, repeats: int = 3, size: int = 64,
              n_naive: int = 200, n_fast: int = 12800) -> dict[str, tuple[float, float]]:
    """Measure training samples/s of three ways to feed the 64x64 exercise, on ONE CPU thread.

    - naive: :class:`VOCVariation` + ``voc_transforms(size)``: decode the full JPEG every time;
    - memory: the same, with ``preload=80`` (arrays in memory, same Albumentations transform);
    - fast: :class:`FastVOCLoader` (in memory, whole-batch augmentation), batches of 64.
    Uses the dataset at ``root`` (default ``data_dir()``) when there is one, else the generated one at
    ``root/toy-voc`` (VOC-sized JPEGs; built if needed). Never downloads. Prints a table and returns
    ``{name: (samples per wall second, samples per CPU second)}`` (medians of ``repeats`` runs). CPU
    seconds count only this process, so they are the fairer figure on a shared machine.
    """
    import cv2

    threads = (torch.get_num_threads(), cv2.getNumThreads())
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        return _benchmark(root, repeats, size, n_naive, n_fast)
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


def _benchmark(root: str | os.PathLike | None, repeats: int, size: int, n_naive: int,
               n_fast: int) -> dict[str, tuple[float, float]]:
    root = Path(root) if root is not None else data_dir()
    if not voc_is_complete(root):  # no dataset (real or generated) there: the generated one beside it
        root = make_toy_voc(root / "toy-voc", TOY_VOC_IMAGES)
    kind = "generated" if is_generated(root) else "real"
    naive = VOCVariation(root, "train", voc_transforms(size))
    start = time.perf_counter()
    memory = VOCVariation(root, "train", voc_transforms(size), preload=80)
    preload_s = time.perf_counter() - start
    fast = FastVOCLoader(memory, batch_size=64, size=size)

    def per_sample(ds: VOCVariation, n: int) -> Callable[[], int]:
        def run() -> int:
            for i in range(n):
                ds[i % len(ds)]
            return n
        return run

    def batches() -> int:
        n = 0
        while n < n_fast:
            for x, _ in fast:
                n += len(x)
        return n

    results = {"naive": _rate(per_sample(naive, n_naive), repeats),
               "memory": _rate(per_sample(memory, 10 * n_naive), repeats),
               "fast": _rate(batches, repeats)}
    shape = naive.load(0)[0].shape
    print(f"{kind} data, train split: {len(naive)} images (first is {shape[1]}x{shape[0]} px); output {size}x{size}; "
          f"1 CPU thread; median of {repeats} runs")
    print(f"preload at 80 px (decode once, or read the cache): {preload_s:.2f} s")
    print(f"{'pipeline':<58} {'samples/s (wall)':>17} {'(CPU)':>8}")
    names = {"naive": "naive: decode the JPEG + Albumentations, per sample",
             "memory": "in memory (preload=80) + Albumentations, per sample",
             "fast": "FastVOCLoader: in memory, whole-batch augmentation"}
    for key, (wall, cpu) in results.items():
        print(f"{names[key]:<58} {wall:>17,.0f} {cpu:>8,.0f}")
    print(f"fast / naive: {results['fast'][0] / results['naive'][0]:.0f}x (wall), "
          f"{results['fast'][1] / results['naive'][1]:.0f}x (CPU)")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_utils.data", description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", action="store_true", help="time the naive and the fast loading paths")
    parser.add_argument("--root", default=None, help="folder that contains VOCdevkit/ (default: data_dir())")
    parser.add_argument("--repeats", type=int, default=3, help="runs per pipeline; the median is shown")
    args = parser.parse_args(argv)
    if not args.benchmark:
        parser.print_help()
        return
    benchmark(args.root, repeats=args.repeats)


if __name__ == "__main__":
    main()
