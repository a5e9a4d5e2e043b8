"""The graded exercise: its solution source, its generated student version, its nbgrader name."""
from __future__ import annotations

from pathlib import Path

from ..core import repo_root


ROOT: Path = repo_root() or Path(__file__).resolve().parents[2]
"""The repository checkout these tools work on. Outside a checkout (the course package on its own, as
in the grader's sandbox, where hidden tests may import this module) it is the folder above the
package, and :data:`SOURCE` and :data:`STUDENT` do not exist there."""
NOTEBOOK = "11_exercise_unet_voc64"
"""File name (without .ipynb) of the exercise, in the source and in every submission."""
SOURCE: Path = ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"
"""The solution source: solutions and hidden tests between nbgrader's markers, nbgrader cell
metadata. Never handed to students (the student release leaves it out)."""
STUDENT: Path = ROOT / "notebooks" / "student" / f"{NOTEBOOK}.ipynb"
"""The generated student version (committed, kept in sync by ``student_version``)."""
ASSIGNMENT = "unet_voc64"
"""The nbgrader assignment name used in the grader's course folders."""
