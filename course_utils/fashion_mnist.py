"""Fashion-MNIST: 70,000 real 28x28 grey photos of clothing in 10 classes, from wherever they are.

:func:`load_fashion_mnist` looks in this order and says which one it used:

1. the Debian/Ubuntu package ``dataset-fashion-mnist`` (``sudo apt-get install dataset-fashion-mnist``),
   which puts the four original files in ``/usr/share/datasets/fashion-mnist/``;
2. torchvision's layout under the course's data folder, ``data_dir()/FashionMNIST/raw/`` (the folder
   ``torchvision.datasets.FashionMNIST(data_dir())`` reads; ``.gz`` or unpacked files);
3. a download into that folder (about 30 MB; MD5-checked; only when online and ``COURSE_OFFLINE`` is not set,
   after :func:`course_utils.core.is_online`'s short check, so nothing hangs on a dead network).

If none works it raises :class:`FashionMNISTNotFound`, whose message says how to get the data. There is
no silent fallback to another dataset. The files are in the IDX format (big-endian header, then raw
bytes): images ``uint8`` of shape (N, 28, 28), 0 = black background, 255 = white; labels ``uint8`` 0..9.
A truncated or corrupt file raises :class:`FashionMNISTCorrupt` naming the file and what to do.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Sequence
from urllib.parse import urlsplit

import numpy as np

from .core import data_dir, is_online, offline_mode, shown_path
from .download import download_file

FASHION_CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
"""The 10 class names, index = label."""

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the four ``.gz`` files."""

FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""Split name -> (images file, labels file), without the ``.gz`` suffix."""

SIZES: dict[str, int] = {"train": 60_000, "test": 10_000}
"""How many images each split of the real dataset has."""

MIRRORS: tuple[str, ...] = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
"""Base URLs of the ``.gz`` files (torchvision's mirror)."""

MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
"""MD5 of each downloaded ``.gz`` (the mirror's files; Debian's are recompressed, so their bytes differ)."""

HOW_TO_GET = ("Get Fashion-MNIST one of two ways:\n"
              "  - Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist\n"
              "  - online (e.g. Colab): unset COURSE_OFFLINE and run again; about 30 MB are downloaded to "
              "data_dir()/FashionMNIST/raw.")


class FashionMNISTNotFound(FileNotFoundError):
    """Fashion-MNIST is neither installed nor downloadable here; the message says how to get it."""


class FashionMNISTCorrupt(ValueError):
    """A Fashion-MNIST file exists but is truncated or not an IDX file; the message names it."""


class FashionMNIST(NamedTuple):
    """One split: ``images`` uint8 (N, 28, 28), ``labels`` uint8 (N,) in 0..9, ``source`` a printable place."""

    images: np.ndarray
    labels: np.ndarray
    source: str


def torchvision_raw_dir(root: str | os.PathLike | None = None) -> Path:
    """``root/FashionMNIST/raw`` (``root`` defaults to ``data_dir()``): torchvision's folder for the files."""
    return Path(data_dir() if root is None else root) / "FashionMNIST" / "raw"


def _file_in(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` or ``folder/name`` (unpacked), whichever exists, else None."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _has_all(folder: Path) -> bool:
    return all(_file_in(folder, name) is not None for pair in FILES.values() for name in pair)


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) of unsigned bytes with ``ndim`` dimensions.

    The header is 0, 0, 0x08 (unsigned byte), ``ndim``, then ``ndim`` big-endian uint32 sizes; the data
    follow, exactly prod(sizes) bytes. Returns a read-only uint8 array of those sizes. Raises
    :class:`FashionMNISTCorrupt` on a bad header, a wrong length, or a broken gzip stream.
    """
    path = Path(path)
    fix = (f"Delete {path.name} and download it again (it is re-fetched when online), or reinstall the "
           "Debian package: sudo apt-get install --reinstall dataset-fashion-mnist.")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, OSError, zlib.error) as err:
        raise FashionMNISTCorrupt(f"{path.name} is not a readable gzip file ({err}): it is truncated or "
                                  f"damaged. {fix}") from err
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes((0, 0, 0x08, ndim)):
        raise FashionMNISTCorrupt(f"{path.name} does not start with the IDX header of a {ndim}-dimensional "
                                  f"uint8 array (found {raw[:4].hex() or 'nothing'}). {fix}")
    sizes = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(sizes))
    if len(raw) - header != expected:
        raise FashionMNISTCorrupt(f"{path.name} should hold {expected:,} bytes of data for shape {sizes}, "
                                  f"but holds {len(raw) - header:,}: it is truncated or damaged. {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(sizes)


def _read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_name, label_name = FILES[split]
    images = read_idx(_file_in(folder, image_name), 3)
    labels = read_idx(_file_in(folder, label_name), 1)
    where = f"{image_name} and {label_name} in {shown_path(folder)}"
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise FashionMNISTCorrupt(f"{where}: images {images.shape} and labels {labels.shape} do not match "
                                  "(expected (N, 28, 28) and (N,)). Delete both files and get them again.")
    if labels.size and labels.max() > 9:
        raise FashionMNISTCorrupt(f"{label_name} in {shown_path(folder)} has labels up to {labels.max()}; "
                                  "Fashion-MNIST has labels 0..9. Delete the file and get it again.")
    return images, labels


def download_fashion_mnist(root: str | os.PathLike | None = None, base_urls: Sequence[str] = MIRRORS,
                           md5: dict[str, str] = MD5, *, timeout: float = 30.0) -> Path:
    """Download the four ``.gz`` files into ``torchvision_raw_dir(root)``; return that folder.

    Files already there are kept. Each file goes through :func:`course_utils.download.download_file`
    (written to ``.part``, renamed only when complete and its MD5 is right), so an interrupted or bad
    download leaves nothing half-written. Tries each base URL in turn; raises RuntimeError naming each
    failure when a file cannot be had. Callers check :func:`offline_mode` first.
    """
    folder = torchvision_raw_dir(root)
    for pair in FILES.values():
        for name in pair:
            if _file_in(folder, name) is not None:
                continue
            failures = []
            for base in base_urls:
                try:
                    download_file(base.rstrip("/") + f"/{name}.gz", folder / f"{name}.gz", timeout=timeout,
                                  md5=md5.get(f"{name}.gz"))
                    break
                except Exception as err:  # network error or bad checksum: try the next mirror
                    failures.append(f"{base}: {err}")
            else:
                raise RuntimeError(f"Could not download {name}.gz:\n  " + "\n  ".join(failures) +
                                   f"\n{HOW_TO_GET}")
    return folder


def find_fashion_mnist(root: str | os.PathLike | None = None, *, download: bool = True,
                       debian_dir: str | os.PathLike = DEBIAN_DIR, base_urls: Sequence[str] = MIRRORS,
                       md5: dict[str, str] = MD5) -> tuple[Path, str]:
    """The folder that holds all four files and how it was found: ``(folder, "debian" | "torchvision" |
    "downloaded")``. Downloads only when ``download`` and online (see the module docstring); otherwise
    raises :class:`FashionMNISTNotFound` with what was searched and how to get the data."""
    debian, local = Path(debian_dir), torchvision_raw_dir(root)
    if _has_all(debian):
        return debian, "debian"
    if _has_all(local):
        return local, "torchvision"
    if download and not offline_mode():
        url = urlsplit(base_urls[0]) if base_urls else None
        if url is not None and is_online(url.hostname or "", url.port or (443 if url.scheme == "https" else 80)):
            return download_fashion_mnist(root, base_urls, md5), "downloaded"
    why = ("COURSE_OFFLINE=1 is set" if offline_mode() else "download=False was passed" if not download
           else "the download server did not answer")
    raise FashionMNISTNotFound(f"Fashion-MNIST is not on this machine: looked in {debian} (Debian package) and "
                               f"{shown_path(local)} (torchvision's layout), and did not download it ({why}).\n"
                               f"{HOW_TO_GET}")


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, *, download: bool = True,
                       debian_dir: str | os.PathLike = DEBIAN_DIR, base_urls: Sequence[str] = MIRRORS,
                       md5: dict[str, str] = MD5) -> FashionMNIST:
    """Load one split (``"train"``: 60,000 images, ``"test"``: 10,000) as read-only NumPy arrays.

    Returns ``FashionMNIST(images, labels, source)``: images uint8 (N, 28, 28), 0..255; labels uint8
    (N,), 0..9 (names in :data:`FASHION_CLASSES`); ``source`` says where the files came from, for the
    notebook to print. ``root`` is the data folder (default ``data_dir()``); the other arguments are for
    tests. Raises :class:`FashionMNISTNotFound` or :class:`FashionMNISTCorrupt` with what to do.
    """
    if split not in FILES:
        raise ValueError(f"split={split!r}: Fashion-MNIST has the splits 'train' and 'test'.")
    folder, how = find_fashion_mnist(root, download=download, debian_dir=debian_dir, base_urls=base_urls, md5=md5)
    images, labels = _read_split(folder, split)
    source = {"debian": f"Debian package dataset-fashion-mnist ({folder})",
              "torchvision": f"{shown_path(folder)} (torchvision's layout)",
              "downloaded": f"downloaded to {shown_path(folder)}"}[how]
    return FashionMNIST(images, labels, source)
