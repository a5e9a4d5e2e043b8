"""The exercise's data pipeline on PASCAL VOC 2012: splits, a Dataset, transforms, and ``get_voc``.

``get_voc()`` finds the data whatever the machine (real VOC on disk, a download, or the generated
stand-in); :class:`VOCVariation` is the lecture's variation (trainval shuffled, split 50/25/25 %)
as a PyTorch ``Dataset``; :func:`voc_transforms` is the Albumentations pipeline that augments and
reduces images and masks to 64x64. The VOC facts themselves live in :mod:`course_utils.voc`.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2
from PIL import Image
from torch.utils.data import Dataset

from .core import data_dir, is_online, offline_mode, shown_path
from .download import download_voc
from .pretrained import IMAGENET_MEAN, IMAGENET_STD
from .voc import (GENERATED_MARKER, IGNORE_INDEX, is_generated, load_voc_sample, read_mask, trainval_ids, voc_folder,
                  voc_is_complete)
from .voc_generated import TOY_VOC_IMAGES, make_toy_voc

SPLIT_FRACTIONS = {"train": 0.5, "val": 0.25, "test": 0.25}
"""The lecture's variation: trainval shuffled, then 50 % train, 25 % val, 25 % test."""
CACHE_SUBDIR = ".course-cache"
"""Folder below ``root`` for the in-memory datasets' cache files (safe to delete)."""

_ANNOUNCED: set[str] = set()


def _missing_dataset_error(root: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"No PASCAL VOC 2012 segmentation data at {voc_folder(root)} ({what}). Expected "
        "JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/trainval.txt there. Either download "
        "the real data with course_utils.download.download_voc(root) (about 2 GB), or generate the offline "
        "stand-in with course_utils.voc_generated.make_toy_voc(root, 600); get_voc() picks one for you.")


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


def _decode_small(voc: Path, image_id: str, short: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample and downscale it so that its short side is ``short`` px (never upscale).

    JPEG decoding uses PIL's ``draft`` (the decoder itself skips detail, 2-8x faster) down to at
    least twice the target, then area interpolation; the mask uses nearest-neighbour.
    """
    with Image.open(voc / "JPEGImages" / f"{image_id}.jpg") as im:
        w, h = im.size
        im.draft("RGB", (max(1, w * 2 * short // min(w, h)), max(1, h * 2 * short // min(w, h))))
        image = np.asarray(im.convert("RGB"))
    mask = read_mask(voc / "SegmentationClass" / f"{image_id}.png")
    scale = short / min(h, w)
    if scale >= 1:
        return np.asarray(load_voc_sample(voc, image_id)[0]), mask
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _preloaded(voc: Path, ids: list[str], short: int, cache: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The split's samples downscaled to short side ``short``, from the cache file or decoded now."""
    marker = voc / GENERATED_MARKER
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

    ``root`` is the folder that contains ``VOCdevkit/`` (real data or ``make_toy_voc``'s, as ``get_voc`` returns);
    ``split`` is "train", "val" or "test" (see :func:`voc_split_ids`). A PyTorch map-style dataset:

    - without ``transform``: ``ds[i]`` is ``(image H×W×3 uint8 RGB, mask H×W uint8)``, mask values
      0..20 and 255 (void);
    - with an Albumentations transform (e.g. :func:`voc_transforms`): whatever the transform
      returns for the image (a float tensor 3×64×64 with ToTensorV2) and the mask as int64.

    ``ds.ids`` lists the image ids, ``ds.kind`` is "real" or "generated".

    Fast path for small inputs: ``preload_px=80`` decodes every image of the split once, downscales it
    so its short side is 80 px (area interpolation; masks nearest), and keeps the uint8 arrays in
    memory, so an epoch never decodes a JPEG (the transform is the same and must work at any input
    size, as :func:`voc_transforms` does). With ``cache=True`` the arrays are also saved to
    ``root/.course-cache/`` and later runs load them in a fraction of a second. Memory: about
    26 kB per image at 80 px (76 MB for the 2913 real images).
    """

    def __init__(self, root: str | os.PathLike, split: str, transform: Callable | None = None, seed: int = 0,
                 *, preload_px: int | None = None, cache: bool = True) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.seed = seed
        self.voc = voc_folder(self.root)
        if split not in SPLIT_FRACTIONS:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}.")
        if not voc_is_complete(self.root):
            raise _missing_dataset_error(self.root, "missing or incomplete")
        all_ids = trainval_ids(self.root)
        self.ids = voc_split_ids(all_ids, split, seed)
        self.kind = "generated" if is_generated(self.root) else "real"
        if self.kind == "generated" and str(self.voc.resolve()) not in _ANNOUNCED:
            _ANNOUNCED.add(str(self.voc.resolve()))
            print(f"Note: {shown_path(self.root)} holds a GENERATED stand-in for PASCAL VOC 2012 "
                  f"({len(all_ids)} images, same file layout), not the real photos.")
        self.preload_px = preload_px
        self._images: list[np.ndarray] | None = None
        self._masks: list[np.ndarray] | None = None
        if preload_px is not None:
            if int(preload_px) != preload_px or preload_px < 8:
                raise ValueError(f"preload_px is the short side, in pixels, of the images kept in memory (e.g. 80); "
                                 f"got {preload_px!r}.")
            self._images, self._masks = _preloaded(self.voc, self.ids, int(preload_px), cache)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The untransformed sample ``index``: (H×W×3 uint8 image, H×W uint8 mask); from memory
        (already downscaled) when the dataset was built with ``preload_px``."""
        if self._images is not None:
            return self._images[index], self._masks[index]
        return load_voc_sample(self.voc, self.ids[index])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for the {self.split!r} split of {len(self)} images.")
        image, mask = self.load(index % len(self))
        return _apply(self.transform, image, mask)

    def __repr__(self) -> str:
        mem = f", in memory at {self.preload_px} px" if self.preload_px else ""
        return (f"VOCVariation(split={self.split!r}, {len(self)} images, {self.kind} data at {shown_path(self.root)}, "
                f"seed={self.seed}, transform={'yes' if self.transform is not None else 'none'}{mem})")


def voc_transforms(size: int = 64, train: bool = True, seed: int | None = None) -> A.Compose:
    """The Albumentations pipeline of notebooks 09, 12 and 13: any VOC image + mask in, ``size``×``size`` tensors out.

    Not the exercise's (notebook 11): that one crops a random ``size``×``size`` window (train) or the
    centre (eval) from images shrunk to a 72-px short side, with no rescaling, and normalises and
    jitters colour per batch on the device. Scores from the two pipelines are not measured on the
    same pixels (here evaluation sees the whole image, there its centre).

    train: ``RandomResizedCrop`` (scale jitter: 25-100 % of the area, aspect 4:5-5:4, then resized to
    size×size), horizontal flip (p=0.5), mild ``ColorJitter`` (p=0.5).
    eval (``train=False``): deterministic: ``LongestMaxSize`` to ``size`` (no distortion, the whole
    image stays) and ``PadIfNeeded`` to a square, padding the image with 0 and the mask with 255
    (void), so padding is never scored as background.
    Both: masks resized with nearest-neighbour (labels are never blended), ImageNet normalisation,
    ``ToTensorV2``. Output: image float32 tensor 3×size×size; mask size×size (uint8 from
    Albumentations; :class:`VOCVariation` turns it into int64).
    seed: Albumentations 2 draws from its own random state, which ``torch.manual_seed``,
    ``np.random.seed`` and ``cu.seed_everything`` do not touch: without a seed the augmentations differ
    on every run. An int makes them repeatable; ``pipeline.set_random_seed(n)`` restarts them later.
    """
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


def get_voc(root: str | os.PathLike | None = None, *, download: bool = True,
            toy_images: int = TOY_VOC_IMAGES) -> tuple[Path, str]:
    """Find PASCAL VOC 2012 for the exercise, whatever the machine: returns ``(root, kind)``.

    ``root`` (default ``data_dir()``) is where the real data lives or goes (``root/VOCdevkit/VOC2012``).
    1. Real data already at ``root``: returns ``(root, "real")``.
    2. Else, when ``download`` is True and the machine is online (not ``COURSE_OFFLINE=1``, and
       :func:`~course_utils.core.is_online`): :func:`~course_utils.download.download_voc` (about 2 GB),
       then ``(root, "real")``. A failed download falls through to 3 with a notice.
    3. Else the generated stand-in (``make_toy_voc``, ``toy_images`` images, 600 by default, in
       FAST mode too) at ``root/toy-voc``, built once and reused, never mixed with the real data's
       place; prints a banner and returns ``(root/"toy-voc", "generated")``.
    ``download=False`` never touches the network (what a notebook that only looks at a few images wants).
    The returned ``root`` is the folder that CONTAINS ``VOCdevkit/``: pass it to :class:`VOCVariation`.
    """
    root = Path(root) if root is not None else data_dir()
    if voc_is_complete(root) and not is_generated(root):
        return root, "real"
    if download and not offline_mode() and is_online():
        try:
            download_voc(root)
            return root, "real"
        except (OSError, RuntimeError) as err:
            print(f"Could not download PASCAL VOC 2012 ({err}).\nFalling back to the generated dataset.")
    toy_root = root / "toy-voc"
    how = "built now" if not voc_is_complete(toy_root) else "built earlier, reused"
    make_toy_voc(toy_root, toy_images)
    why = "offline mode" if offline_mode() else ("download=False" if not download else "no network")
    bar = "=" * 78
    print(f"{bar}\nGENERATED DATA, NOT REAL PHOTOS: no PASCAL VOC 2012 here and no download ({why}).\n"
          f"Using a generated stand-in with the same file layout: {toy_images} images of shapes with\n"
          f"class-specific colour/texture at {shown_path(toy_root)} ({how}).\n"
          f"Every cell runs the same; scores are not comparable with real VOC.\n{bar}")
    return toy_root, "generated"
