"""course_utils.authoring.grading on a tiny throwaway nbgrader assignment (two graded parts: 2 + 3 points).

Every grade runs the real nbgrader autograde in its own process, so this file takes tens of
seconds rather than a few; the submissions are graded two at a time, each kernel in the sandbox when
bubblewrap can run here (else without it: these tests are about grading, the sandbox has its own).
Hostile submissions are in ``test_grading_hostile.py``.
"""
import csv
import importlib.util
import json
import os
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils.authoring import exercise, grading, nbgrader_release, sandbox, student_version

pytest.importorskip("nbgrader")

NAME = "tiny_exercise"
SANDBOX = sandbox.probe()[0]


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
    tampered = _answer(blank)
    tampered.cells[-1].metadata.nbgrader["solution"] = True  # a flag of a locked test cell that nbgrader cannot undo
    put("tampered_test", tampered)
    (subs / "absent").mkdir()
    (subs / "linked_folder").symlink_to(subs / "solution", target_is_directory=True)  # would grade the solution
    put("linked_inside", _answer(blank))
    (subs / "linked_inside" / "notes.txt").symlink_to(subs / "solution" / f"{NAME}.ipynb")
    out = root / "grades.csv"
    results = grading.grade_folder(subs, out, source, workers=2, cell_timeout=4, notebook_timeout=120,
                                   prepare_data=False, verbose=False, sandbox=SANDBOX)
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
    assert r.status == "timeout" and r.parts == {"test_add": 2, "test_mul": 0}
    assert "4 s per-cell time limit" in r.notes


def test_deleted_or_edited_test_cells_are_put_back(course):
    r = _by_student(course["results"])
    assert r["deleted_test"].total == 5 and "deleted" in r["deleted_test"].notes
    assert r["edited_test"].parts == {"test_add": 2, "test_mul": 0}


def test_broken_missing_and_renamed_submissions_do_not_stop_the_others(course):
    r = _by_student(course["results"])
    assert (r["broken"].total, r["broken"].status) == (0, "error") and "not a readable notebook" in r["broken"].notes
    assert (r["absent"].total, r["absent"].status) == (0, "missing")
    assert r["renamed"].total == 5 and "my copy.ipynb" in r["renamed"].notes


def test_links_anywhere_under_the_submissions_are_refused_not_followed(course):
    r = _by_student(course["results"])
    for student, where in (("linked_folder", "the submission folder itself"), ("linked_inside", "notes.txt")):
        assert (r[student].total, r[student].status) == (0, "error")
        assert r[student].notes.startswith(f"{where} is a symbolic link")
    assert r["solution"].total == 5  # the folder the link pointed at is graded once, as itself


def test_a_test_cell_edited_beyond_repair_is_an_error_that_says_why(course):
    r = _by_student(course["results"])["tampered_test"]
    assert (r.status, r.total) == ("error", 0)
    assert "locked cell test_mul was changed" in r.notes and "checksum does not match" in r.notes
    assert "above traceback" not in r.notes


def test_csv_has_one_row_per_student_with_parts_total_max_status_and_mode(course):
    with open(course["out"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["student"] for row in rows] == sorted(p.name for p in course["subs"].iterdir())
    assert list(rows[0]) == ["student", "test_add", "test_mul", "total", "max", "status", "mode", "review", "notes"]
    solution = next(row for row in rows if row["student"] == "solution")
    assert (solution["test_add"], solution["test_mul"], solution["total"], solution["max"]) == ("2", "3", "5", "5")
    assert {row["mode"] for row in rows} == {"full"}


def test_reports_hold_the_full_note_and_the_csv_a_short_one(course):
    reports = course["out"].parent / "grades-reports"
    assert sorted(p.stem for p in reports.glob("*.txt")) == sorted(p.name for p in course["subs"].iterdir())
    for r in course["results"]:
        report = (reports / f"{r.student}.txt").read_text()
        assert all(note in report for note in r.notes.split("; ")), r.student
        # no trusted judge for this (non-exercise) assignment: each report says its tests ran in the kernel
        assert f"judged: {grading.JUDGED_IN_KERNEL}" in report and grading.JUDGED_OUTSIDE not in report
    with open(course["out"], newline="") as fh:
        assert all(len(row["notes"]) <= grading.SHORT_NOTE + 60 for row in csv.DictReader(fh))


def test_short_notes_are_cut_at_a_word_boundary():
    text = "test_mul: AssertionError: " + "mul(2, 3) should be six " * 20
    short = grading.short_note(text, 60)
    assert len(short) <= 60 and short.endswith(" …")
    assert text.startswith(short[:-2]) and text[len(short) - 2] == " "  # the cut falls between two words
    assert grading.short_note("fits   as  it is", 60) == "fits as it is"


def test_a_fast_grade_is_marked_as_a_smoke_test_in_the_csv(tmp_path):
    results = [grading.Result("ann", {"p": 1.0}, 1.0, 2.0, "graded", mode="fast"),
               grading.Result("bob", {"p": 2.0}, 2.0, 2.0, "graded", review=["cell 3: changes the course package"])]
    grading.write_csv(results, tmp_path / "g.csv", ["p"])
    with open(tmp_path / "g.csv", newline="") as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    assert rows["ann"]["mode"] == "fast (smoke test, not a grade)" and rows["bob"]["mode"] == "full"
    assert rows["bob"]["review"] == "1" and rows["bob"]["notes"].startswith("REVIEW 1 item(s): cell 3")
    assert not list(tmp_path.glob(".g.csv*"))  # written through a temporary file, none left


def test_the_template_is_read_only_hash_checked_and_rebuilt_when_changed(course):
    work = course["root"] / ".nbgrader_work"
    template = grading.prepare_template(course["source"], work, exercise.ASSIGNMENT)
    digest = grading.verify_template(template)
    db = template / "gradebook.db"
    assert db.stat().st_mode & 0o222 == 0 and template.stat().st_mode & 0o222 == 0
    db.chmod(0o644)
    with open(db, "ab") as fh:
        fh.write(b"poison")
    with pytest.raises(RuntimeError, match="changed since it was built"):
        grading.verify_template(template)
    rebuilt = grading.prepare_template(course["source"], work, exercise.ASSIGNMENT)
    assert rebuilt == template and not db.read_bytes().endswith(b"poison")
    assert grading.verify_template(rebuilt) and digest
    assert grading.graded_parts(template / "source" / exercise.ASSIGNMENT / f"{NAME}.ipynb") == {"test_add": 2, "test_mul": 3}


def test_the_sandbox_gets_the_course_package_alone(tmp_path):
    folder = grading.course_package(tmp_path)
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    assert "course_utils/__init__.py" in files and "course_utils/metrics.py" in files
    assert not [f for f in files if f.endswith((".ipynb", ".pyc")) or not f.startswith("course_utils/")]
    assert all(p.stat().st_mode & 0o222 == 0 for p in folder.rglob("*") if p.is_file())
    assert grading.course_package(tmp_path) == folder  # reused while the package is unchanged


def test_import_bindings_are_read_from_the_source(course):
    assert grading.import_bindings(_source_notebook()) == []
    nb = new_notebook(cells=[new_code_cell("import numpy as np\nimport os.path\nfrom course_utils import metrics as m\n"
                                           "%matplotlib inline\nfrom x import *")])
    assert grading.import_bindings(nb) == [["np", "numpy", None], ["os", "os", None], ["m", "course_utils", "metrics"]]


def test_without_a_sandbox_the_grader_refuses_and_says_what_to_install(course, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, message = sandbox.probe()
    assert not ok and "apt-get install bubblewrap" in message and "--no-sandbox" in message
    with pytest.raises(grading.SandboxUnavailable, match="bubblewrap"):
        grading.grade_folder(course["subs"], None, course["source"], prepare_data=False, verbose=False)
    assert grading.main([str(course["subs"]), "--source", str(course["source"])]) == 2
    assert "apt-get install bubblewrap" in capsys.readouterr().err


def test_regrading_is_idempotent_and_only_changed_submissions_are_regraded(course):
    before = course["out"].read_text()
    again = grading.grade_folder(course["subs"], course["out"], course["source"], workers=2, cell_timeout=4,
                                 notebook_timeout=120, prepare_data=False, verbose=False, sandbox=SANDBOX)
    refused = {"linked_folder", "linked_inside"}  # refused without grading, so nothing to cache
    assert all(r.cached for r in again if r.student not in refused) and course["out"].read_text() == before
    course["put"]("wrong_mul", _answer(course["blank"]))  # the student fixed mul and resubmitted
    third = _by_student(grading.grade_folder(course["subs"], course["out"], course["source"], workers=2,
                                             cell_timeout=4, notebook_timeout=120, prepare_data=False, verbose=False,
                                             sandbox=SANDBOX))
    assert [s for s, r in third.items() if not r.cached and s not in refused] == ["wrong_mul"]
    assert third["wrong_mul"].total == 5
    assert course["out"].read_text() != before


def test_a_notebook_over_its_time_limit_is_stopped(course, tmp_path):
    template = grading.prepare_template(course["source"], course["root"] / ".nbgrader_work", exercise.ASSIGNMENT)
    sub = course["subs"] / "loops" / f"{NAME}.ipynb"
    isolation = None if SANDBOX else grading.Isolation(sandbox=False)
    r = grading.grade_submission(sub, "slow", template, tmp_path, cell_timeout=600, notebook_timeout=8,
                                 name=NAME, isolation=isolation)
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


def test_nbgrader_runs_without_jsonschemas_iri_checker(tmp_path):
    """The shim makes jsonschema skip rfc3987-syntax (2.8 s per nbgrader run); plain Python still has it."""
    probe = [sys.executable, "-c", "import jsonschema._format as f; print(hasattr(f, 'is_iri'))"]
    plain = nbgrader_release.nbgrader_env()
    shimmed = nbgrader_release.with_shims(tmp_path, plain)
    assert shimmed["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / nbgrader_release.SHIM_FOLDER)
    assert subprocess.run(probe, env=shimmed, capture_output=True, text=True, check=True).stdout.strip() == "False"
    if importlib.util.find_spec("rfc3987_syntax") is not None:   # the shim is what hides it
        assert subprocess.run(probe, env=plain, capture_output=True, text=True, check=True).stdout.strip() == "True"


def test_a_failure_of_the_grading_machine_is_retried_and_never_cached(course, tmp_path, monkeypatch):
    log = "bwrap: execvp /venv/bin/python: No such file or directory\n[AutogradeApp | ERROR] There was an error"
    assert grading._nbgrader_failure(log).endswith(grading._MACHINE)
    calls = []

    def flaky(**args):  # the machine fails for "flaky" every time, and for "once" only on the first try
        calls.append(args["student"])
        fault = args["student"] == "flaky" or calls.count("once") == 1
        return grading.Result(args["student"], {"test_add": 0.0, "test_mul": 0.0}, 0.0, 5.0,
                              "error" if fault else "graded", "", machine_fault=fault)

    monkeypatch.setattr(grading, "grade_submission", flaky)
    subs = tmp_path / "subs"
    for student in ("flaky", "once"):
        (subs / student).mkdir(parents=True)
        nbformat.write(_answer(course["blank"]), subs / student / f"{NAME}.ipynb")
    kw = dict(workers=1, prepare_data=False, verbose=False, sandbox=SANDBOX, work=tmp_path / "work")
    first = _by_student(grading.grade_folder(subs, tmp_path / "g.csv", course["source"], **kw))
    assert sorted(calls) == ["flaky", "flaky", "once", "once"]  # one retry each
    assert first["once"].status == "graded" and first["flaky"].machine_fault
    again = _by_student(grading.grade_folder(subs, tmp_path / "g.csv", course["source"], **kw))
    assert again["once"].cached and not again["flaky"].cached  # the fault was not kept as a grade
    assert calls.count("flaky") == 4
