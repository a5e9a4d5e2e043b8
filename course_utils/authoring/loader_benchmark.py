"""Time the exercise's training data pipeline, as the solution source writes it, on ONE CPU thread.

Usage (from the repository root)::

    python -m course_utils.authoring.loader_benchmark                 # a generated VOC of real-VOC size
    python -m course_utils.authoring.loader_benchmark --root PATH     # PATH contains VOCdevkit/ (real VOC)

Two pipelines over one epoch of the training split (1456 images for the 2913 of VOC 2012):

- naive: what the exercise did before: decode the full-size JPEG and PNG of every sample in every epoch,
  then augment and normalise it per sample with Albumentations (``SmallestMaxSize``, crop, flip,
  ``ColorJitter``, ``Normalize``, ``ToTensorV2``), batched by a ``DataLoader``;
- cached: the reference solution of notebook 11, run from the source notebook itself: its ``transforms``
  and ``dataset`` solution cells (decode once at ``LOAD_PX``, crop + flip per sample, uint8 batches),
  one epoch of its ``train_loader`` with ``num_workers=0``. The per-batch device step
  (``normalize(colour_jitter(...))``) is timed apart: on a GPU it runs there, not on the CPU.

Without ``--root`` the data is a generated set of ``--images`` images (default 2913) in
``data_dir()/toy-voc-<images>``, built once. Never downloads. Figures are samples per second of
CPU time of this process (the fair figure on a shared machine) and of wall time.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import cv2
import nbformat
import numpy as np
import torch

from ..core import data_dir
from ..pretrained import IMAGENET_MEAN, IMAGENET_STD
from ..voc import is_generated, voc_is_complete
from ..voc_generated import make_toy_voc
from .exercise import SOURCE

REAL_VOC_IMAGES = 2913
"""Images in VOC 2012's segmentation ``trainval``: the train split of the exercise has half of them."""


def solution_namespace(root: Path, source: Path = SOURCE, load_px: int | None = None) -> dict:
    """Run the exercise's ``transforms`` and ``dataset`` solution cells (and the notebook's function
    definitions that finish a batch) on the data at ``root``, on the CPU; return their namespace.

    The notebook's constants come from its own sizes cell where they do not depend on the mode; the
    training set is the whole train split (``TRAIN_LIMIT = None``), validation and test are left empty.
    """
    import albumentations as A
    from PIL import Image
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    nb = nbformat.read(source, as_version=4)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells if c.cell_type == "code"}
    missing = [gid for gid in ("transforms", "dataset") if gid not in cells]
    if missing:
        raise ValueError(f"{source.name} has no solution cell {missing}; is it the exercise's solution source?")
    constants = _constants(nb)
    ns: dict = {"__name__": "__main__", "np": np, "torch": torch, "nn": nn, "cv2": cv2, "A": A, "Image": Image,
                "DataLoader": DataLoader, "Dataset": Dataset, "Path": Path, "IMAGENET_MEAN": IMAGENET_MEAN,
                "IMAGENET_STD": IMAGENET_STD, "DEVICE": torch.device("cpu"), "LOADER_KW": {"num_workers": 0},
                "root": Path(root), "voc": Path(root) / "VOCdevkit" / "VOC2012",
                **constants, "TRAIN_LIMIT": None, "EVAL_LIMIT": 0}
    if load_px is not None:
        ns["LOAD_PX"] = load_px
    with contextlib.redirect_stdout(io.StringIO()):  # the cells' own prints
        for gid in ("transforms", "dataset"):
            exec(compile(cells[gid], f"<{source.name}:{gid}>", "exec"), ns)
    finishing = next((c.source for c in nb.cells if c.cell_type == "code" and "def colour_jitter" in c.source), None)
    if finishing is not None:  # only its function definitions, not the cell's timing loop
        tree = ast.parse(finishing)
        tree.body = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
        exec(compile(tree, f"<{source.name}:finish>", "exec"), ns)
    return ns


def _constants(nb: nbformat.NotebookNode) -> dict:
    """SIZE, LOAD_PX, SEED and BATCH_SIZE as the notebook's sizes cell sets them (plain literals)."""
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            body = ast.parse(cell.source).body
        except SyntaxError:  # IPython syntax (the setup cell's !git, %pip)
            continue
        for node in body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id in ("SIZE", "LOAD_PX", "SEED", "BATCH_SIZE")
                    and isinstance(node.value, ast.Constant)):
                found.setdefault(node.targets[0].id, node.value.value)
    missing = {"SIZE", "LOAD_PX", "SEED", "BATCH_SIZE"} - set(found)
    if missing:
        raise ValueError(f"the notebook sets no plain value for {sorted(missing)}")
    return found


def _naive_loader(root: Path, ids: list[str], size: int, batch_size: int, seed: int):
    """The pipeline the exercise used before: full decode + full Albumentations chain per sample."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2
    from PIL import Image
    from torch.utils.data import DataLoader

    voc = Path(root) / "VOCdevkit" / "VOC2012"
    chain = A.Compose([A.SmallestMaxSize(max_size=size), A.RandomCrop(size, size), A.HorizontalFlip(),
                       A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
                       A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()], seed=seed)

    class Naive:
        def __len__(self) -> int:
            return len(ids)

        def __getitem__(self, i: int):
            image = np.asarray(Image.open(voc / "JPEGImages" / f"{ids[i]}.jpg").convert("RGB"))
            mask = np.asarray(Image.open(voc / "SegmentationClass" / f"{ids[i]}.png"))
            out = chain(image=image, mask=mask)
            return out["image"], out["mask"].long()

    return DataLoader(Naive(), batch_size=batch_size, shuffle=True)


def _rate(run: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Median samples/s over ``repeats`` runs: (per second of CPU time of this process, per second of wall time)."""
    cpu, wall = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        n = run()
        cpu.append(n / max(time.process_time() - c, 1e-9))
        wall.append(n / max(time.perf_counter() - t, 1e-9))
    return float(np.median(cpu)), float(np.median(wall))


def benchmark(root: str | os.PathLike | None = None, images: int = REAL_VOC_IMAGES, repeats: int = 3,
              n_naive: int = 256, source: Path = SOURCE) -> dict[str, tuple[float, float]]:
    """Samples per second (CPU time, wall time) of the exercise's training pipelines on ONE thread.

    ``root``: a folder that contains ``VOCdevkit/`` (real VOC); default: a generated set of ``images``
    images in ``data_dir()/toy-voc-<images>`` (built once). Keys of the result: ``naive`` (decode +
    augment every sample, measured on ``n_naive`` samples), ``cached`` (the reference solution: one
    epoch of its ``train_loader``), ``device_step`` (its per-batch ``normalize(colour_jitter(...))``,
    here on the CPU). Also prints a table with the one-off decode time.
    """
    threads = (torch.get_num_threads(), cv2.getNumThreads())
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        return _benchmark(root, images, repeats, n_naive, source)
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


def _benchmark(root, images: int, repeats: int, n_naive: int, source: Path) -> dict[str, tuple[float, float]]:
    if root is None:
        root = data_dir() / f"toy-voc-{images}"
        if not voc_is_complete(root):
            print(f"building a generated VOC of {images} images (once) ...", flush=True)
        make_toy_voc(root, images)
    root = Path(root)
    start_cpu, start = time.process_time(), time.perf_counter()
    ns = solution_namespace(root, source)
    decode_cpu, decode_wall = time.process_time() - start_cpu, time.perf_counter() - start
    train_loader, size, batch = ns["train_loader"], ns["SIZE"], ns["BATCH_SIZE"]
    n_train = len(train_loader.dataset)
    naive = _naive_loader(root, list(ns["splits"]["train"]), size, batch, ns["SEED"])

    def epoch() -> int:
        return sum(len(images) for images, _ in train_loader)

    def naive_part() -> int:
        seen = 0
        for x, _ in naive:
            seen += len(x)
            if seen >= n_naive:
                break
        return seen

    batches = [b for b, _ in zip(train_loader, range(8))]

    def device_step() -> int:
        finish = ns.get("finish_train")
        for images, masks in batches:
            finish(images, masks) if finish else ns["normalize"](images)
        return sum(len(b[0]) for b in batches)

    results = {"naive": _rate(naive_part, repeats), "cached": _rate(epoch, repeats),
               "device_step": _rate(device_step, repeats)}
    kind = "generated" if is_generated(root) else "real"
    print(f"{kind} VOC at {root.name}: train split {n_train} images; batches of {batch}, {size}x{size}; "
          f"ONE CPU thread; median of {repeats} runs")
    print(f"decode once at LOAD_PX={ns['LOAD_PX']} (the reference VOCDataset): {decode_cpu:.1f} s CPU, "
          f"{decode_wall:.1f} s wall, {n_train / max(decode_cpu, 1e-9):,.0f} images/s")
    names = {"naive": "naive: decode + augment + normalise every sample",
             "cached": "cached: reference solution, an epoch of train_loader",
             "device_step": "its per-batch device step, here on the CPU"}
    print(f"{'pipeline':<54} {'samples/s (CPU)':>16} {'(wall)':>9}")
    for key, (cpu, wall) in results.items():
        print(f"{names[key]:<54} {cpu:>16,.0f} {wall:>9,.0f}")
    print(f"cached / naive: {results['cached'][0] / results['naive'][0]:.0f}x (CPU time)")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.authoring.loader_benchmark",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="folder that contains VOCdevkit/ (default: a generated set)")
    parser.add_argument("--images", type=int, default=REAL_VOC_IMAGES, help="size of the generated set")
    parser.add_argument("--repeats", type=int, default=3, help="runs per pipeline; the median is shown")
    args = parser.parse_args(argv)
    benchmark(args.root, images=args.images, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
