"""The graded exercise: its solution source, its generated student version, its nbgrader name."""
from __future__ import annotations

from pathlib import Path

from ..core import repo_root


def _root() -> Path:
    root = repo_root()
    if root is None:
        raise RuntimeError("the authoring tools work on a checkout of the course repository (notebooks/ next to "
                           "course_utils/); install it with `pip install -e .` from the clone.")
    return root


ROOT: Path = _root()
"""The repository checkout these tools work on."""
NOTEBOOK = "11_exercise_unet_voc64"
"""File name (without .ipynb) of the exercise, in the source and in every submission."""
SOURCE: Path = ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"
"""The solution source: solutions between ``### BEGIN/END SOLUTION``, hidden tests between
``### BEGIN/END HIDDEN TESTS``, nbgrader cell metadata. Never handed to students."""
STUDENT: Path = ROOT / "notebooks" / "student" / f"{NOTEBOOK}.ipynb"
"""The generated student version (committed, kept in sync by ``student_version``)."""
ASSIGNMENT = "unet_voc64"
"""The nbgrader assignment name used in the grader's course folders."""
