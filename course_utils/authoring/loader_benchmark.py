"""Time ways of feeding 64x64 PASCAL VOC samples to a network, on ONE CPU thread (an author's tool).

Usage (from the repository root)::

    python -m course_utils.authoring.loader_benchmark            # real VOC if present, else the generated set

Three pipelines: naive (decode the full JPEG + Albumentations per sample), in memory
(``VOCVariation(..., preload_px=80)`` + the same Albumentations transform per sample) and
:class:`FastVOCLoader` (in memory, whole-batch augmentation). It never downloads.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from ..core import data_dir
from ..pretrained import IMAGENET_MEAN, IMAGENET_STD
from ..voc import IGNORE_INDEX, is_generated, voc_is_complete
from ..voc_dataset import VOCVariation, voc_transforms
from ..voc_generated import TOY_VOC_IMAGES, make_toy_voc


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

    It reads the samples once through the dataset's public ``load(i)`` (so build the dataset with
    ``preload_px=80`` to keep that cheap) and applies
    the augmentation of :func:`voc_transforms` with the same parameters, written for whole batches:
    per image only a crop and one ``cv2.resize`` (image bilinear, mask nearest); then, for the whole
    batch at once, horizontal flips and the colour jitter (brightness, contrast, saturation, hue as
    one 3x3 matrix per image) fused with the ImageNet normalisation. Differences from the
    Albumentations pipeline: the jitter is applied in a fixed order and values are not clipped to
    0..255 between the colour steps. ``train=False`` is the deterministic eval transform
    (longest side to ``size``, void padding) and gives the same masks as ``voc_transforms(train=False)``.

    The loader does its own augmentation, so the dataset must have no ``transform`` (a ValueError says so).
    Yields ``(images, masks)``: float32 (N, 3, size, size) and int64 (N, size, size), 255 = void.
    ``shuffle`` defaults to ``train``; each epoch draws new crops from a generator seeded with ``seed``.
    """

    def __init__(self, dataset: VOCVariation, batch_size: int = 64, shuffle: bool | None = None,
                 train: bool = True, size: int = 64, drop_last: bool = False, seed: int = 0) -> None:
        if not isinstance(dataset, VOCVariation):
            raise TypeError(f"FastVOCLoader needs a VOCVariation, got {type(dataset).__name__}; for other "
                            "datasets use torch.utils.data.DataLoader with a transform.")
        if dataset.transform is not None:
            raise ValueError("FastVOCLoader augments whole batches itself and would ignore the dataset's transform; "
                             "pass VOCVariation(root, split, transform=None, preload_px=80).")
        if batch_size < 1 or size < 8:
            raise ValueError(f"batch_size must be >= 1 and size >= 8, got {batch_size} and {size}.")
        pairs = [dataset.load(i) for i in range(len(dataset))]
        self.images, self.masks = [p[0] for p in pairs], [p[1] for p in pairs]
        self.dataset, self.batch_size, self.train, self.size = dataset, int(batch_size), train, int(size)
        self.shuffle = train if shuffle is None else shuffle
        self.drop_last = drop_last
        self.rng = np.random.default_rng(seed)
        self.hw = np.array([m.shape for m in self.masks], dtype=np.int64)
        self.mean = np.array(IMAGENET_MEAN) * 255
        self.std = np.array(IMAGENET_STD) * 255

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for k in range(len(self)):
            yield self._batch(order[k * self.batch_size:(k + 1) * self.batch_size])

    def _batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        S, n = self.size, len(idx)
        images, masks = self.images, self.masks
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


# ------------------------------------------------------------------ the benchmark
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
    - memory: the same, with ``preload_px=80`` (arrays in memory, same Albumentations transform);
    - fast: :class:`FastVOCLoader` (in memory, whole-batch augmentation), batches of 64.
    Uses the dataset at ``root`` (default ``data_dir()``) when there is one, else the generated one at
    ``root/toy-voc`` (VOC-sized JPEGs; built if needed). Never downloads. Prints a table and returns
    ``{name: (samples per wall second, samples per CPU second)}`` (medians of ``repeats`` runs). CPU
    seconds count only this process, so they are the fairer figure on a shared machine.
    """
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
    memory = VOCVariation(root, "train", voc_transforms(size), preload_px=80)
    in_memory = VOCVariation(root, "train", preload_px=80)  # the same arrays (cached), no transform
    preload_s = time.perf_counter() - start
    fast = FastVOCLoader(in_memory, batch_size=64, size=size)

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
             "memory": "in memory (preload_px=80) + Albumentations, per sample",
             "fast": "FastVOCLoader: in memory, whole-batch augmentation"}
    for key, (wall, cpu) in results.items():
        print(f"{names[key]:<58} {wall:>17,.0f} {cpu:>8,.0f}")
    print(f"fast / naive: {results['fast'][0] / results['naive'][0]:.0f}x (wall), "
          f"{results['fast'][1] / results['naive'][1]:.0f}x (CPU)")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.authoring.loader_benchmark",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="folder that contains VOCdevkit/ (default: data_dir())")
    parser.add_argument("--repeats", type=int, default=3, help="runs per pipeline; the median is shown")
    args = parser.parse_args(argv)
    benchmark(args.root, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
