"""The student version of the exercise: generated from the solution source, committed, kept in sync.

Usage (from the repository root), after every edit of the source notebook::

    python -m course_utils.authoring.student_version            # writes notebooks/student/...
    python -m course_utils.authoring.student_version --check    # exit 1 if it is out of date
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import nbformat

from .conventions import refresh, relpath_of
from .exercise import ASSIGNMENT, ROOT, SOURCE, STUDENT
from .nbgrader_release import generate_release

REGENERATE = "run `python -m course_utils.authoring.student_version`"


def generate_student_version(source: Path = SOURCE, dest: Path | None = STUDENT, root: Path = ROOT,
                             assignment: str = ASSIGNMENT, badge: bool = True) -> nbformat.NotebookNode:
    """The student version of ``source``: nbgrader's release (solutions replaced by
    ``raise NotImplementedError()``, hidden tests removed, outputs cleared, test cells locked), with
    the title cell's Colab badge pointing at the student version's own path. Written to ``dest``
    (relative to ``root`` for the badge) unless ``dest`` is None. ``badge=False`` leaves the title
    and setup cells as nbgrader wrote them (for notebooks outside the course). Returns the notebook.
    """
    source = Path(source).resolve()
    with tempfile.TemporaryDirectory(prefix="nbgrader-release-") as tmp:
        nb = nbformat.read(generate_release(source, Path(tmp), assignment), as_version=4)
    rel = relpath_of(dest, root) if dest is not None else f"notebooks/student/{source.name}"
    if badge:
        refresh(nb, rel)
    for cell in nb.cells:  # keep diffs clean: no random cell ids, no execution timestamps of the source
        cell.pop("id", None)
        cell.metadata.pop("execution", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    if dest is not None:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
    return nb


def student_version_problems(committed: Path = STUDENT, source: Path = SOURCE, root: Path = ROOT,
                             fresh: nbformat.NotebookNode | None = None) -> list[str]:
    """Differences between the committed student version and one generated now from ``source``
    (or the given ``fresh`` one): cell types, sources and nbgrader metadata. Empty = in sync."""
    rel = relpath_of(committed, root)
    if fresh is None:
        fresh = generate_student_version(source, None, root)
    fresh = copy.deepcopy(fresh)
    refresh(fresh, rel)
    if not Path(committed).exists():
        return [f"{rel} does not exist; {REGENERATE}"]
    old = nbformat.read(committed, as_version=4)

    def key(nb: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
        return [(c.cell_type, c.source, json.dumps(c.get("metadata", {}).get("nbgrader", {}), sort_keys=True))
                for c in nb.cells]

    a, b = key(old), key(fresh)
    if a == b:
        return []
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return [f"{rel} is out of sync with {Path(source).name} (first difference at cell {first}; "
            f"{len(a)} vs {len(b)} cells); {REGENERATE}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SOURCE, help="solution source notebook")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the student version is stale")
    args = parser.parse_args(argv)
    if args.check:
        problems = student_version_problems(STUDENT, args.source)
        print("\n".join(problems) or "student version is up to date")
        return 1 if problems else 0
    generate_student_version(args.source, STUDENT)
    print(f"wrote {relpath_of(STUDENT, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
