"""Re-execute notebooks in place and store their outputs (what is committed).

Usage (from the repository root)::

    python -m course_utils.authoring.execute notebooks/02_*.ipynb          # full mode, offline
    python -m course_utils.authoring.execute --fast notebooks/05_*.ipynb   # fast mode (CI's sizes)

Committed outputs are produced in full mode (COURSE_FAST=0) and offline (COURSE_OFFLINE=1) by
default, so they show what a student without a network sees. Each run prints its wall time: the
README's notebook table lists the full-mode times.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

from .conventions import refresh, relpath_of
from ..core import repo_root


def execute(path: Path, fast: bool = False, offline: bool = True, timeout: int = 1800) -> float:
    """Run the notebook at ``path`` top to bottom in place, outputs stored; returns the wall time in seconds.

    The badge and setup cell are refreshed first. ``timeout`` is the limit per cell, in seconds.
    """
    path = Path(path)
    env = {"COURSE_FAST": "1" if fast else "0", "COURSE_OFFLINE": "1" if offline else "0", "TQDM_DISABLE": "1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nb = nbformat.read(path, as_version=4)
        root = repo_root()
        if root is not None:
            refresh(nb, relpath_of(path, root))
        start = time.perf_counter()
        ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
            nb, {"metadata": {"path": str(path.resolve().parent)}})
        elapsed = time.perf_counter() - start
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks to execute in place")
    parser.add_argument("--fast", action="store_true", help="fast mode (default: full mode)")
    parser.add_argument("--online", action="store_true", help="allow downloads (default: offline)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    args = parser.parse_args(argv)
    for path in args.paths:
        seconds = execute(path, fast=args.fast, offline=not args.online, timeout=args.timeout)
        print(f"executed {path} in {seconds:.1f} s ({'fast' if args.fast else 'full'} mode)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
