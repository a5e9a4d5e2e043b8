"""The student release (``course_utils.authoring.release``): no solution, no hidden test, badges for its own repository.

One release is written into a temporary folder for the whole module (it copies the checkout and checks
that the committed student version is in sync, which runs nbgrader once: about ten seconds).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from course_utils.authoring import conventions, exercise, release

pytest.importorskip("nbgrader")
REPO = "someone-else/course-release"
pytestmark = pytest.mark.skipif(not exercise.SOURCE.exists(), reason="no exercise source here (a release?)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    dest = tmp_path_factory.mktemp("release") / "course"
    dropped = release.write_release(dest, repo=REPO)
    return dest, dropped


def _texts(dest: Path):
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        try:
            yield path.relative_to(dest).as_posix(), path.read_text()
        except UnicodeDecodeError:
            continue


def test_the_release_holds_no_solution_marker_no_hidden_test_and_no_source_file(built):
    dest, _ = built
    source = nbformat.read(exercise.SOURCE, as_version=4)
    hidden = release.hidden_test_lines(source, nbformat.read(exercise.STUDENT, as_version=4))
    assert hidden, "the source has hidden tests, so this check means something"
    source_bytes = exercise.SOURCE.read_bytes()
    for rel, text in _texts(dest):
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            assert marker not in text, rel
        if rel.endswith(".ipynb"):
            text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
        assert not [snippet for snippet in hidden if snippet in release._lines(text)], rel
        assert (dest / rel).read_bytes() != source_bytes, rel
    assert not (dest / exercise.SOURCE.relative_to(exercise.ROOT)).exists()
    assert (dest / exercise.STUDENT.relative_to(exercise.ROOT)).exists()  # where students open it
    assert release.release_problems(dest) == []


def test_grading_tools_and_their_tests_stay_in_the_instructors_repository(built):
    dest, dropped = built
    for rel in ("course_utils/authoring/grading.py", "course_utils/authoring/sandbox.py",
                "tests/test_grading.py", "tests/test_grading_hostile.py",
                "tests/test_release.py", exercise.SOURCE.relative_to(exercise.ROOT).as_posix()):
        assert rel in dropped and not (dest / rel).exists(), rel
    kept = {rel for rel, _ in _texts(dest)}
    assert {"course_utils/core.py", "course_utils/authoring/conventions.py", "course_utils/authoring/exercise.py",
            "README.md", "Makefile",
            "tests/test_metrics.py", "notebooks/00_start_here.ipynb"} <= kept
    for rel in kept:  # nothing kept imports what was left out
        if rel.endswith(".py"):
            assert not release._module_imports(dest / rel) & {f"authoring.{m}" for m in release.INSTRUCTOR_MODULES}, rel
    readme, makefile = (dest / "README.md").read_text(), (dest / "Makefile").read_text()
    assert "For instructors" not in readme and "instructor-only" not in readme and "11_exercise_unet_voc64.ipynb`" not in readme
    assert not re.search(r"^(grade|release|student-version):", makefile, re.M) and "instructor-only" not in makefile
    assert "bwrap" not in (dest / ".ci" / "run").read_text() and "make test" in (dest / ".ci" / "run").read_text()


def test_badges_and_setup_cells_point_at_the_release_repository(built):
    dest, _ = built
    text = (dest / "course_utils" / "authoring" / "conventions.py").read_text()
    assert f'GITHUB_REPO = "{REPO}"' in text
    notebooks = sorted((dest / "notebooks").rglob("*.ipynb"))
    assert len(notebooks) >= 10
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        rel = path.relative_to(dest).as_posix()
        assert f"colab.research.google.com/github/{REPO}/blob/{conventions.BRANCH}/{rel}" in nb.cells[0].source, rel
        setup = [c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith(conventions.SETUP_MARKER)]
        assert len(setup) == 1 and f"https://github.com/{REPO} " in setup[0], rel
        assert conventions.GITHUB_REPO not in "".join(c.source for c in nb.cells), rel
    assert conventions.GITHUB_REPO not in (dest / "README.md").read_text()


def test_the_check_finds_a_planted_leak(built, tmp_path):
    dest, _ = built
    source = nbformat.read(exercise.SOURCE, as_version=4)
    hidden = sorted(release.hidden_test_lines(source, nbformat.read(exercise.STUDENT, as_version=4)))
    planted = dest / "notes_for_later.md"
    try:
        planted.write_text("remember:\n" + "\n".join("        " + line for line in hidden[0].splitlines()) + "\n")
        assert any("hidden tests" in p for p in release.release_problems(dest))
        planted.write_text("### BEGIN SOLUTION\n")
        assert any("BEGIN SOLUTION" in p for p in release.release_problems(dest))
        planted.write_bytes(exercise.SOURCE.read_bytes())
        assert any("copy of the solution source" in p for p in release.release_problems(dest))
    finally:
        planted.unlink()


def test_release_refuses_a_folder_inside_the_repository_or_not_empty(tmp_path):
    with pytest.raises(ValueError, match="inside the repository"):
        release.write_release(exercise.ROOT / "release-here")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        release.write_release(tmp_path / "full")
    with pytest.raises(ValueError, match="OWNER/NAME"):
        release.write_release(tmp_path / "new", repo="not a repo")
