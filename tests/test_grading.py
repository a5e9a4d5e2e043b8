"""course_utils.authoring.grading on a tiny throwaway nbgrader assignment (two graded parts: 2 + 3 points).

Every grade runs the real nbgrader autograde in its own process, so this file takes tens of
seconds rather than a few; the submissions are graded two at a time.
"""
import csv
import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils.authoring import exercise, grading, student_version

pytest.importorskip("nbgrader")

NAME = "tiny_exercise"


def _cell(cell, gid, grade=False, solution=False, points=None):
    meta = {"grade": grade, "solution": solution, "locked": grade, "grade_id": gid, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def _source_notebook():
    nb = new_notebook(cells=[
        new_markdown_cell("# Tiny exercise\nWrite `add` and `mul`."),
        _cell(new_code_cell("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"),
              "add", solution=True),
        _cell(new_code_cell("assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-2, 2) == 0\n"
                            "### END HIDDEN TESTS"), "test_add", grade=True, points=2),
        _cell(new_code_cell("def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION"),
              "mul", solution=True),
        _cell(new_code_cell("assert mul(2, 3) == 6, 'mul(2, 3) should be 6'"), "test_mul", grade=True, points=3),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _answer(nb, add="return a + b", mul="return a * b"):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "add":
            cell.source = f"def add(a, b):\n    {add}"
        if gid == "mul":
            cell.source = f"def mul(a, b):\n    {mul}"
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    source = root / f"{NAME}.ipynb"
    nbformat.write(_source_notebook(), source)
    template = grading.prepare_template(source, root / ".nbgrader_work", exercise.ASSIGNMENT)
    blank = nbformat.read(template / "release" / exercise.ASSIGNMENT / f"{NAME}.ipynb", as_version=4)
    subs = root / "submissions"

    def put(student, nb=None, text=None, name=NAME):
        folder = subs / student
        folder.mkdir(parents=True, exist_ok=True)
        if nb is not None:
            nbformat.write(nb, folder / f"{name}.ipynb")
        if text is not None:
            (folder / f"{name}.ipynb").write_text(text)

    put("solution", _source_notebook())                 # the source itself, hidden tests included
    put("blank", blank)                                  # the untouched student version
    put("wrong_mul", _answer(blank, mul="return a + b"))
    put("loops", _answer(blank, mul="while True:\n        pass"))
    deleted = _answer(blank)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_mul"]
    put("deleted_test", deleted)
    edited = _answer(blank, mul="return a + b")
    edited.cells[-1].source = "assert True"              # the student "fixed" the mul test instead of mul
    put("edited_test", edited)
    put("renamed", _answer(blank), name="my copy")
    put("broken", text="{this is not json")
    (subs / "absent").mkdir()
    out = root / "grades.csv"
    results = grading.grade_folder(subs, out, source, workers=2, cell_timeout=4, notebook_timeout=120,
                                   prepare_data=False, verbose=False)
    return dict(root=root, source=source, blank=blank, subs=subs, out=out, results=results, put=put)


def _by_student(results):
    return {r.student: r for r in results}


def test_student_version_removes_solutions_and_hidden_tests(course):
    student = student_version.generate_student_version(course["source"], None, course["root"], badge=False)
    assert [c.source for c in student.cells] == [c.source for c in course["blank"].cells]
    text = "\n".join(c.source for c in course["blank"].cells)
    assert "raise NotImplementedError" in text and "return a + b" not in text
    assert "add(-2, 2)" not in text and "BEGIN" not in text
    assert all(not c.get("outputs") for c in course["blank"].cells if c.cell_type == "code")


def test_solution_full_marks_blank_zero_one_wrong_part_loses_its_points(course):
    r = _by_student(course["results"])
    assert (r["solution"].total, r["solution"].max, r["solution"].status) == (5, 5, "graded")
    assert r["solution"].parts == {"test_add": 2, "test_mul": 3}
    assert (r["blank"].total, r["blank"].status) == (0, "graded")
    assert "NotImplementedError" in r["blank"].notes or "NameError" in r["blank"].notes
    assert r["wrong_mul"].parts == {"test_add": 2, "test_mul": 0}
    assert "mul(2, 3) should be 6" in r["wrong_mul"].notes


def test_infinite_loop_is_cut_by_the_cell_time_limit(course):
    r = _by_student(course["results"])["loops"]
    assert r.status == "graded" and r.parts == {"test_add": 2, "test_mul": 0}
    assert "time limit" in r.notes


def test_deleted_or_edited_test_cells_are_put_back(course):
    r = _by_student(course["results"])
    assert r["deleted_test"].total == 5 and "deleted" in r["deleted_test"].notes
    assert r["edited_test"].parts == {"test_add": 2, "test_mul": 0}


def test_broken_missing_and_renamed_submissions_do_not_stop_the_others(course):
    r = _by_student(course["results"])
    assert (r["broken"].total, r["broken"].status) == (0, "error") and r["broken"].notes
    assert (r["absent"].total, r["absent"].status) == (0, "missing")
    assert r["renamed"].total == 5 and "my copy.ipynb" in r["renamed"].notes


def test_csv_has_one_row_per_student_with_parts_total_and_max(course):
    with open(course["out"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["student"] for row in rows] == sorted(p.name for p in course["subs"].iterdir())
    assert list(rows[0]) == ["student", "test_add", "test_mul", "total", "max", "status", "notes"]
    solution = next(row for row in rows if row["student"] == "solution")
    assert (solution["test_add"], solution["test_mul"], solution["total"], solution["max"]) == ("2", "3", "5", "5")


def test_regrading_is_idempotent_and_only_changed_submissions_are_regraded(course):
    before = course["out"].read_text()
    again = grading.grade_folder(course["subs"], course["out"], course["source"], workers=2, cell_timeout=4,
                                 notebook_timeout=120, prepare_data=False, verbose=False)
    assert all(r.cached for r in again) and course["out"].read_text() == before
    course["put"]("wrong_mul", _answer(course["blank"]))  # the student fixed mul and resubmitted
    third = _by_student(grading.grade_folder(course["subs"], course["out"], course["source"], workers=2,
                                             cell_timeout=4, notebook_timeout=120, prepare_data=False, verbose=False))
    assert [s for s, r in third.items() if not r.cached] == ["wrong_mul"]
    assert third["wrong_mul"].total == 5
    assert course["out"].read_text() != before


def test_a_notebook_over_its_time_limit_is_stopped(course, tmp_path):
    template = grading.prepare_template(course["source"], course["root"] / ".nbgrader_work", exercise.ASSIGNMENT)
    sub = course["subs"] / "loops" / f"{NAME}.ipynb"
    r = grading.grade_submission(sub, "slow", template, tmp_path, cell_timeout=600, notebook_timeout=8,
                                 name=NAME)
    assert (r.status, r.total, r.max) == ("timeout", 0, 5) and "8 s limit" in r.notes


def test_parts_of_a_source_notebook(course):
    assert grading.graded_parts(course["source"]) == {"test_add": 2.0, "test_mul": 3.0}


def test_missing_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="student_id"):
        grading.grade_folder(tmp_path / "nope")


# ---- the real exercise: the committed student version must match its source -------------------

@pytest.fixture(scope="module")
def fresh_student_version():
    if not exercise.SOURCE.exists():
        pytest.skip("the exercise source notebook is not there yet")
    return student_version.generate_student_version(exercise.SOURCE, None)


def test_committed_student_version_is_in_sync_with_the_source(fresh_student_version):
    assert student_version.student_version_problems(fresh=fresh_student_version) == []


def test_student_version_has_no_solutions_and_every_part_has_a_test(fresh_student_version):
    text = "\n".join(c.source for c in fresh_student_version.cells if c.cell_type == "code")
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert text.count("raise NotImplementedError()") == 5  # one per part the student writes
    parts = grading.graded_parts(exercise.SOURCE)
    assert parts == grading.graded_parts(fresh_student_version) and sum(parts.values()) == 15  # 2 + 4 + 4 + 1 + 2 + 2


def test_sync_check_notices_a_stale_student_version(fresh_student_version, tmp_path):
    stale = nbformat.from_dict(json.loads(json.dumps(fresh_student_version)))
    stale.cells[-3].source += "\n- an extra line in the source that the student version lacks"
    path = tmp_path / "notebooks" / "student" / exercise.STUDENT.name
    path.parent.mkdir(parents=True)
    nbformat.write(stale, path)
    problems = student_version.student_version_problems(path, root=tmp_path, fresh=fresh_student_version)
    assert problems and "out of sync" in problems[0]
