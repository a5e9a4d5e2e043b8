"""Grading on a Dask cluster (course_utils.authoring.grading_cluster): a real scheduler and two real
workers, started as processes on 127.0.0.1, grade the tiny assignment of test_grading.py in fast mode;
faults (a worker killed mid-grade, a submission that kills its worker every time) use a stand-in that
wraps the real task function. The scheduler gives up on a task after 2 worker deaths (allowed-failures 1).
"""
import contextlib
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest

pytest.importorskip("distributed")
from cluster_standins import bomb, orphan_maker, slow  # noqa: E402
from test_grading import NAME, _answer, _source_notebook  # noqa: E402

from course_utils.authoring import exercise, grading, grading_cluster, grading_report, sandbox  # noqa: E402

SANDBOX = sandbox.probe()[0]
ROOT = Path(__file__).resolve().parent.parent
ORPHANS = Path(tempfile.gettempdir()) / f"grading-cluster-orphans-{os.getpid()}.txt"  # pid, worker folder


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1",
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1", "ORPHAN_PIDS": str(ORPHANS)}


def _start_worker(address, name):
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                             "--host", "127.0.0.1", "--no-dashboard", "--name", name], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.fixture(scope="module")
def cluster():
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], env=_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    workers = [_start_worker(address, f"w{i}") for i in range(2)]
    from distributed import Client
    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(address, timeout="5s") as client:
                client.wait_for_workers(2, timeout=60)
            break
        except OSError:
            assert time.monotonic() < deadline, "the test's Dask scheduler did not start"
            time.sleep(0.5)
    yield dict(address=address, workers=workers)
    for proc in [*workers, scheduler]:
        _kill_group(proc)
    ORPHANS.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    source = root / f"{NAME}.ipynb"
    nbformat.write(_source_notebook(), source)
    template = grading.prepare_template(source, root / "local_work", exercise.ASSIGNMENT)
    blank = nbformat.read(template / "release" / exercise.ASSIGNMENT / f"{NAME}.ipynb", as_version=4)
    subs = root / "submissions"
    for student, nb in [("full_marks", _source_notebook()), ("blank", blank),
                        ("one_bug", _answer(blank, mul="return a + b"))]:
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / f"{NAME}.ipynb")
    (subs / "absent").mkdir()
    local = root / "local" / "grades.csv"
    grading.grade_folder(subs, local, source, workers=2, fast=True, cell_timeout=30, notebook_timeout=120,
                         work=root / "local_work", prepare_data=False, verbose=False, sandbox=SANDBOX)
    return dict(root=root, source=source, subs=subs, local=local)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _grade(course, engine, name):
    out = course["root"] / name / "grades.csv"
    results = grading.grade_folder(course["subs"], out, course["source"], fast=True, cell_timeout=30,
                                   notebook_timeout=120, work=course["root"] / name / "work", prepare_data=False,
                                   verbose=False, sandbox=SANDBOX, engine=engine)
    return out, results


def test_a_real_cluster_grades_like_the_local_pool(cluster, course, capsys):
    out = course["root"] / "cluster" / "grades.csv"
    argv = [str(course["subs"]), "--out", str(out), "--source", str(course["source"]), "--fast",
            "--scheduler", cluster["address"], "--cell-timeout", "30", "--notebook-timeout", "120"]
    assert grading_cluster.main(argv + ([] if SANDBOX else ["--no-sandbox"])) == 0
    text = capsys.readouterr().out
    assert "Dask scheduler tcp://127.0.0.1" in text and "3/3 graded" in text  # the progress bar
    assert out.read_text() == course["local"].read_text()
    rows = {r["student"]: r for r in _rows(out)}
    assert (rows["full_marks"]["total"], rows["blank"]["total"], rows["one_bug"]["total"]) == ("5", "0", "2")
    graded = course["root"] / "cluster" / ".nbgrader_work" / "graded" / "full_marks.ipynb"
    assert graded.exists()  # the graded notebook came back from the worker
    report = (course["root"] / "cluster" / "grades-report.html").read_text()  # the class report, with the workers
    assert "Every student" in report and re.search(rf"<td>{re.escape(socket.gethostname())}:\d+</td>", report)
    assert "wrote the class report" in text
    # started again: nothing left to grade (the client's cache), the same CSV
    assert grading_cluster.main(argv + ([] if SANDBOX else ["--no-sandbox"])) == 0
    again = capsys.readouterr().out
    assert "graded, " not in again and out.read_text() == course["local"].read_text()
    assert grading_report.CACHED in (course["root"] / "cluster" / "grades-report.html").read_text()


def test_a_worker_killed_mid_grade_costs_nothing(cluster, course):
    """w0 is killed once its first grade has started a process of its own (as nbgrader does): the grades
    are the same, and what the dead worker left running is stopped (grading_cluster.reap_orphans)."""
    ORPHANS.write_text("")
    engine = grading_cluster.Engine(cluster["address"], grade_fn=orphan_maker, verbose=False, allowed_failures=1).start()
    victim = cluster["workers"][0]
    import threading

    def kill_once_it_grades():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            mine = {f"w-{p.pid}" for p in psutil.Process(victim.pid).children(recursive=True)}
            if any(line.split()[1] in mine for line in ORPHANS.read_text().splitlines()):
                return _kill_group(victim)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_once_it_grades)
    try:
        killer.start()
        out, results = _grade(course, engine, "killed")
        killer.join()
    finally:
        engine.close()
        cluster["workers"][0] = _start_worker(cluster["address"], "w0-again")
    assert victim.poll() is not None  # it was really killed
    assert [r["student"] for r in _rows(out)] == ["absent", "blank", "full_marks", "one_bug"]
    assert out.read_text() == course["local"].read_text()
    orphans = [line.split() for line in ORPHANS.read_text().splitlines()]
    of_the_dead = [int(pid) for pid, folder in orphans if not psutil.pid_exists(int(folder[2:]))]
    try:
        assert of_the_dead, "the killed worker had started no process"
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in of_the_dead) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_running(pid) for pid in of_the_dead), "the dead worker's processes were left running"
    finally:
        for pid, _ in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _running(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_submission_that_kills_its_worker_every_time_is_an_error(cluster, course):
    with grading_cluster.Engine(cluster["address"], grade_fn=bomb, verbose=False, allowed_failures=1) as engine:
        out, results = _grade(course, engine, "bomb")
    rows = {r["student"]: r for r in _rows(out)}
    assert (rows["one_bug"]["status"], rows["one_bug"]["total"]) == ("error", "0")
    assert "died every time" in rows["one_bug"]["notes"]
    assert (rows["full_marks"]["total"], rows["full_marks"]["status"]) == ("5", "graded")
    assert rows["blank"]["status"] == "graded"
    # not cached: the next run tries it again
    assert not (course["root"] / "bomb" / "work" / "results" / "one_bug.json").exists()


def test_an_unreachable_scheduler_fails_at_once_and_writes_nothing(course, capsys, tmp_path):
    out = tmp_path / "grades.csv"
    start = time.monotonic()
    rc = grading_cluster.main([str(course["subs"]), "--out", str(out), "--source", str(course["source"]),
                               "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    assert rc == 2 and time.monotonic() - start < 10
    assert "no Dask scheduler answers" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_plain_grader_sends_a_cluster_grade_to_the_dask_front_door(course, capsys, tmp_path, monkeypatch):
    argv = [str(course["subs"]), "--out", str(tmp_path / "grades.csv"), "--source", str(course["source"])]
    assert grading.main(argv + ["--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "python -m course_utils.authoring.grading_cluster" in capsys.readouterr().err
    monkeypatch.setenv(grading_cluster.SCHEDULER_ENV, "tcp://127.0.0.1:1")
    assert grading.main(argv) == 2 and grading_cluster.main(argv) == 2
    assert "no Dask scheduler answers at tcp://127.0.0.1:1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert grading_cluster.main(argv + ["--resources", "GPU=one"]) == 2
    assert "--resources expects NAME=NUMBER" in capsys.readouterr().err


def test_the_workers_of_a_machine_prepare_the_dataset_once_per_run(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_WORK", str(tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    calls = []
    monkeypatch.setattr(grading, "_prepare_data", lambda env, work: calls.append(work) or data)
    work = grading_cluster._worker_folder()
    for run in ["r1", "r1", "r2"]:  # a fresh worker each time (its state is per process)
        monkeypatch.setattr(grading_cluster, "_WORKER_STATE", {})
        assert grading_cluster._worker_data({"run": run}, {}, work) == data
    assert len(calls) == 2  # once for r1 (the second worker read the note), once for r2
    data.rmdir()  # the folder a note names is gone: prepared again
    monkeypatch.setattr(grading_cluster, "_WORKER_STATE", {})
    grading_cluster._worker_data({"run": "r1"}, {}, work)
    assert len(calls) == 3


def test_resources_are_parsed():
    assert grading_cluster.parse_resources("GPU=1, MEM=2") == {"GPU": 1.0, "MEM": 2.0}
    assert grading_cluster.parse_resources(None) == {}
    with pytest.raises(ValueError, match="GPU=1"):
        grading_cluster.parse_resources("GPU=one")
    with pytest.raises(ValueError, match="GPU=1"):
        grading_cluster.parse_resources("=1")


@pytest.mark.skipif(not SANDBOX, reason="bubblewrap cannot run here")
def test_a_worker_without_bubblewrap_gives_the_install_message(course, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # the worker processes inherit it: no bwrap
    with grading_cluster.Engine("local", workers=1, verbose=False) as engine:
        with pytest.raises(grading.SandboxUnavailable, match="apt-get install bubblewrap"):
            _grade(course, engine, "nobwrap")
    assert not (course["root"] / "nobwrap" / "grades.csv").exists()


def test_a_scheduler_lost_mid_run_stops_with_a_clear_message(course):
    import threading
    ORPHANS.write_text("")
    env = {"PYTHONPATH": _env()["PYTHONPATH"], "ORPHAN_PIDS": str(ORPHANS)}
    with grading_cluster.local_processes(1, env) as processes:
        engine = grading_cluster.Engine(processes.address, grade_fn=orphan_maker, verbose=False).start()

        def kill_once_it_grades():  # the scheduler goes while the first grade runs
            deadline = time.monotonic() + 120
            while not ORPHANS.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            _kill_group(processes.scheduler)

        threading.Thread(target=kill_once_it_grades).start()
        try:
            with pytest.raises(grading_cluster.ClusterUnavailable, match="lost the connection to the Dask scheduler"):
                start = time.monotonic()
                _grade(course, engine, "lost")
        finally:
            engine.close()
            for line in ORPHANS.read_text().splitlines():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[0]), signal.SIGKILL)
    assert time.monotonic() - start < 60  # no hang
    assert not (course["root"] / "lost" / "grades.csv").exists()  # no CSV from a partial run
