"""Grade a class on a Dask cluster (issue 22): the same tasks as today's local pool, sent to workers.

``python -m course_utils.authoring.grading_cluster SUBMISSIONS --scheduler tcp://HOST:PORT`` (or the
environment variable ``DASK_SCHEDULER_ADDRESS``; ``make grade SCHEDULER=...``) takes the grader's options
(:mod:`.grading`) and sends one task per submission to an existing Dask cluster; ``--scheduler local``
starts a Dask cluster of ``--workers`` processes on this machine. Without either, the grader runs as
before, in a thread pool on this machine. (The grader does not import this module: it builds on the
grader, and hands :func:`start_engine` to ``grading.main``.)

Trust stays with the client (the instructor's machine): it holds the template and its hash, the results
cache and the CSV. A task carries the submission's BYTES and the template (a tar of the read-only nbgrader
folder) and its hash; no shared file system is assumed. The worker unpacks the template in its own folder
(``$COURSE_GRADING_WORK`` or the system's temporary folder, ``course-grading-<uid>/w-<pid>``), checks its hash,
grades in the same bubblewrap sandbox (a worker without bubblewrap fails the task with the install message)
and returns the result, the graded notebook and the template hash it used, which the client checks again.

Faults: a worker that dies mid-grade costs a retry elsewhere (the scheduler's ``allowed-failures``). A
submission whose task killed its workers that many times is given one more chance with a fresh key (a
task only queued on a dying worker is counted too); killed again, it ends as ``error`` with a note and is
not cached, so the next run tries it again. Every other student is graded. What a killed worker left
running (nbgrader runs in a session of its own) is stopped by :func:`reap_orphans`. A scheduler lost
mid-run stops the run with :class:`ClusterUnavailable` (the grades done are cached; no CSV is written).

The one place that calls the grader: :func:`_grade_one` (re-point it when grading.py's per-submission
function changes).
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import os
import socket
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import CancelledError
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
LOCAL = "local"
ALLOWED_FAILURES = 2   # the local cluster's scheduler: a task is tried 3 times on workers that die
SECOND_CHANCES = 1     # then the client submits it once more under a new key before calling it an error

__all__ = ["ClusterUnavailable", "Engine", "start_engine", "grade_task", "parse_resources", "check_reachable",
           "reap_orphans", "local_processes", "measure", "main", "SCHEDULER_ENV", "LOCAL"]


class ClusterUnavailable(RuntimeError):
    """The scheduler cannot be reached, or no worker offers what the tasks need; the message says why."""


def parse_resources(text: str | None) -> dict[str, float]:
    """``"GPU=1,MEM=2"`` -> ``{"GPU": 1.0, "MEM": 2.0}`` (what each task asks of a worker)."""
    found: dict[str, float] = {}
    for item in filter(None, (text or "").replace(" ", "").split(",")):
        name, sep, value = item.partition("=")
        try:
            if not name:
                raise ValueError
            found[name] = float(value) if sep else 1.0
        except ValueError:
            raise ValueError(f"--resources expects NAME=NUMBER[,NAME=NUMBER], e.g. GPU=1; got {text!r}") from None
    return found


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Raise :class:`ClusterUnavailable` at once when nothing listens at ``tcp://HOST:PORT``."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        raise ClusterUnavailable(f"the scheduler address {address!r} is not of the form tcp://HOST:PORT")
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=timeout).close()
    except OSError as err:
        raise ClusterUnavailable(
            f"no Dask scheduler answers at {address} ({err}). Start one with `dask scheduler` on that machine "
            f"(it prints its tcp:// address), check the host and port, or leave out --scheduler and "
            f"{SCHEDULER_ENV} to grade on this machine. Nothing was graded or written.") from None


# ---------------------------------------------------------------- the worker's side

def _grade_one(**kwargs):
    """THE call of the grader's per-submission function (keyword arguments as grade_folder builds them)."""
    from .grading import grade_submission
    return grade_submission(**kwargs)


def pack_template(template: Path) -> bytes:
    """The template folder as a tar in memory (files 0644, folders 0755: the worker makes them read-only)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(Path(template).rglob("*")):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(template).as_posix())
            info.mode = 0o755 if path.is_dir() else 0o644
            info.uid = info.gid = 0
            if path.is_file():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            elif path.is_dir():
                tar.addfile(info)
    return buffer.getvalue()


_WORKER_STATE: dict = {}


def _worker_folder() -> Path:
    base = Path(os.environ.get("COURSE_GRADING_WORK") or tempfile.gettempdir()) / f"course-grading-{os.getuid()}"
    folder = base / f"w-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def reap_orphans() -> list[int]:
    """Stop what the dead grading workers of this machine left running, and remove their folders.

    A grade runs nbgrader in a session of its own, so a worker killed mid-grade (out of memory, SIGKILL)
    leaves it running, orphaned, until its time limit. Each worker calls this before its first grade, and
    the client runs it on every worker when one died. A folder ``w-<pid>`` whose process is gone is a dead
    worker's: every process whose command line names that folder is killed with its children, then the
    folder is removed. Returns the process ids killed."""
    import psutil
    from . import grading
    base = _worker_folder().parent
    killed: list[int] = []
    for folder in sorted(base.glob("w-*")):
        pid = folder.name[2:]
        if not pid.isdigit() or int(pid) == os.getpid() or psutil.pid_exists(int(pid)):
            continue  # a live worker (or its pid taken by another process: left alone)
        claimed = base / f"reaping-{os.getpid()}-{folder.name}"
        try:
            folder.rename(claimed)  # atomic: when two workers find the same dead folder, one reaps it
        except OSError:
            continue
        marker = f"{folder}{os.sep}"
        for proc in psutil.process_iter(["pid", "cmdline", "uids"]):
            try:
                if proc.info["uids"] is None or proc.info["uids"].real != os.getuid():
                    continue
                if not any(marker in arg or arg == str(folder) for arg in proc.info["cmdline"] or []):
                    continue
                for victim in [*proc.children(recursive=True), proc]:
                    with contextlib.suppress(psutil.Error):
                        victim.kill()
                        killed.append(victim.pid)
            except psutil.Error:
                continue
        with contextlib.suppress(OSError):
            grading._remove(claimed)
    for note in base.glob("data-*.path"):  # the dataset notes of runs over a day old
        with contextlib.suppress(OSError):
            if time.time() - note.stat().st_mtime > 86400:
                note.unlink()
    return killed


def _unpack_template(task: dict, work: Path) -> Path:
    from . import grading
    template = work / task["template_name"]
    if _WORKER_STATE.get("template") != (template, task["template_digest"]):
        grading._remove(template)
        with tarfile.open(fileobj=io.BytesIO(task["template_tar"]), mode="r:gz") as tar:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(template, **kwargs)
        digest = grading._tree_digest(template)
        if digest != task["template_digest"]:
            raise RuntimeError("the grading template arrived damaged (its hash differs from the client's)")
        grading._write_atomic(grading._template_digest_file(template), digest + "\n")
        grading._set_read_only(template)
        _WORKER_STATE["template"] = (template, digest)
    return template


def grade_task(task: dict) -> dict:
    """Grade one submission on a worker. ``task``: picklable (bytes, numbers, strings). Returns a dict:
    ``result`` (the Result's fields), ``template_digest`` (of the template it graded with), ``graded`` (the
    graded notebook's bytes, or None) and ``worker`` (host and process id)."""
    from . import grading
    from . import sandbox as sbx
    from .nbgrader_release import nbgrader_env
    work = _worker_folder()
    if "reaped" not in _WORKER_STATE:  # a new worker (maybe the one started in place of a killed one)
        try:
            _WORKER_STATE["reaped"] = reap_orphans()
        except Exception:  # never fails a grade: the next worker or the client's sweep tries again  # noqa: BLE001
            _WORKER_STATE["reaped"] = []
    template = _unpack_template(task, work)
    kernel_env = dict(task["kernel_env"])
    try:  # the cores of this machine shared among the grades that run on it at once (every worker's threads)
        from distributed import get_worker
        worker = get_worker()
        threads = task.get("host_threads", {}).get(urlparse(worker.address).hostname) or worker.state.nthreads
    except (ImportError, ValueError, AttributeError):
        threads = 1
    kernel_env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, threads)))
    isolation = grading.Isolation(sandbox=task["sandbox"], kernel_env=kernel_env, limits=sbx.Limits(**task["limits"]),
                                  sandbox_uid=task["sandbox_uid"], guard=task["guard"], bindings=task["bindings"])
    isolation.check()  # SandboxUnavailable with the install message, raised back to the client
    env = nbgrader_env(kernel_env)
    if isolation.sandbox:
        if "package" not in _WORKER_STATE:
            _WORKER_STATE["package"] = grading.course_package(work)
        isolation.course_dir = _WORKER_STATE["package"]
    if task["prepare_data"]:
        isolation.data_dir = _worker_data(task, env, work)
    inbox = work / "in" / task["student"]
    grading._remove(inbox)
    inbox.mkdir(parents=True)
    submission = inbox / f"{task['name']}.ipynb"
    submission.write_bytes(task["data"])
    result = _grade_one(submission=submission, student=task["student"], template=template, work=work,
                        cell_timeout=task["cell_timeout"], notebook_timeout=task["notebook_timeout"], env=env,
                        assignment=task["assignment"], name=task["name"], note=task["note"], isolation=isolation,
                        mode=task["mode"])
    graded = work / "students" / task["student"] / "autograded" / task["student"] / task["assignment"] / f"{task['name']}.ipynb"
    reply = {"result": {k: v for k, v in asdict(result).items() if k != "cached"},
             "template_digest": grading.verify_template(template),
             "graded": graded.read_bytes() if graded.exists() else None,
             "worker": f"{socket.gethostname()}:{os.getpid()}"}
    grading._remove(inbox)
    return reply


def _worker_data(task: dict, env: dict[str, str], work: Path) -> Path | None:
    """The dataset folder for this worker: prepared (``grading._prepare_data``) by the first worker of this
    machine in this run, under a lock; the machine's other workers read its folder from a note
    (``data-<run>.path``) instead of preparing it again. None when preparing failed."""
    from . import grading
    if "data" not in _WORKER_STATE:
        with open(work.parent / "prepare_data.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            note = work.parent / f"data-{task.get('run', 'none')}.path"
            known = Path(note.read_text().strip()) if note.exists() else None
            if known is not None and known.is_dir():
                _WORKER_STATE["data"] = known
            else:
                _WORKER_STATE["data"] = grading._prepare_data(env, work)
                if _WORKER_STATE["data"] is not None:
                    grading._write_atomic(note, f"{_WORKER_STATE['data']}\n")
    return _WORKER_STATE["data"]


def make_task(args: dict, data: bytes, template_tar: bytes, template_digest: str, prepare_data: bool) -> dict:
    """The picklable task for one submission, from the keyword arguments grade_folder builds."""
    isolation = args["isolation"]
    return dict(student=args["student"], data=data, note=args.get("note", ""), name=args["name"],
                assignment=args["assignment"], cell_timeout=args["cell_timeout"],
                notebook_timeout=args["notebook_timeout"], mode=args.get("mode", "full"),
                template_name=Path(args["template"]).name, template_tar=template_tar, template_digest=template_digest,
                sandbox=isolation.sandbox, kernel_env=dict(isolation.kernel_env), limits=asdict(isolation.limits),
                sandbox_uid=isolation.sandbox_uid, guard=isolation.guard, bindings=list(isolation.bindings),
                prepare_data=prepare_data)


# ---------------------------------------------------------------- the client's side

def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class Engine:
    """Runs grade_folder's per-submission tasks on a Dask cluster.

    scheduler: ``tcp://HOST:PORT`` of a running scheduler, or ``"local"`` for a cluster of ``workers``
    processes on this machine. resources: what each task asks of a worker (``{"GPU": 1}``). grade_fn: the
    function the workers run on a task (default :func:`grade_task`; tests pass a stand-in).
    """

    def __init__(self, scheduler: str, workers: int | None = None, resources: dict[str, float] | None = None,
                 grade_fn=grade_task, verbose: bool = True, allowed_failures: int = ALLOWED_FAILURES,
                 second_chances: int = SECOND_CHANCES, wait_for_workers: float = 120):
        self.scheduler, self.workers, self.resources = scheduler, workers, dict(resources or {})
        self.grade_fn, self.verbose = grade_fn, verbose
        self.allowed_failures, self.second_chances, self.wait = allowed_failures, second_chances, wait_for_workers
        self.client = self.cluster = None
        self.where: dict[str, str] = {}  # student -> the worker ("host:pid") that graded it, for the class report

    def start(self) -> Engine:
        """Connect (or start the local cluster). Raises :class:`ClusterUnavailable` at once when the
        scheduler does not answer, before anything is written."""
        import dask
        from distributed import Client, LocalCluster
        if self.scheduler == LOCAL:
            import logging
            with dask.config.set({"distributed.scheduler.allowed-failures": self.allowed_failures}):
                self.cluster = LocalCluster(n_workers=max(1, self.workers or (os.cpu_count() or 2) // 2),
                                            threads_per_worker=1, processes=True, host="127.0.0.1",
                                            dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                                            resources=self.resources or None)
                # the scheduler's HTTP server (its dashboard when bokeh is installed) on a free port of this machine only
            self.client = Client(self.cluster)
        else:
            check_reachable(self.scheduler)
            try:
                self.client = Client(self.scheduler, timeout="15s")
            except OSError as err:
                raise ClusterUnavailable(f"could not connect to the Dask scheduler at {self.scheduler}: {err}") from None
        if self.verbose:
            import importlib.util
            link = self.client.dashboard_link if self.client.scheduler_info().get("services", {}).get("dashboard") else None
            if link and self.scheduler == LOCAL and not importlib.util.find_spec("bokeh"):
                link = None  # the HTTP server runs, but the dashboard pages need bokeh
            elif link:
                link += " (served when bokeh is installed on the scheduler)" if self.scheduler != LOCAL else ""
            print(f"Dask scheduler {self.client.scheduler.address}; dashboard: "
                  f"{link or 'none (pip install bokeh on the scheduler for one)'}", flush=True)
        return self

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def __enter__(self):
        return self.start() if self.client is None else self

    def __exit__(self, *exc):
        self.close()

    def _workers(self) -> dict[str, dict]:
        """Every worker the scheduler knows: ``{address: info}`` (some versions list only 5 unless asked)."""
        try:
            return self.client.scheduler_info(n_workers=-1).get("workers", {})
        except TypeError:  # distributed before the n_workers argument: all of them
            return self.client.scheduler_info().get("workers", {})

    def _check_workers(self) -> None:
        workers = self._workers()
        if not workers:
            if self.verbose:
                print(f"waiting up to {self.wait:g} s for a worker to join the scheduler ...", flush=True)
            try:
                self.client.wait_for_workers(1, timeout=self.wait)
            except TimeoutError:
                raise ClusterUnavailable(f"no worker joined the scheduler {self.client.scheduler.address} within "
                                         f"{self.wait:g} s: start some with `dask worker {self.client.scheduler.address}`") from None
            workers = self._workers()
        if self.resources and not any(all(w.get("resources", {}).get(k, 0) >= v for k, v in self.resources.items())
                                      for w in workers.values()):
            wanted = ",".join(f"{k}={v:g}" for k, v in self.resources.items())
            raise ClusterUnavailable(f"no worker offers {wanted}: start the workers with `dask worker ADDRESS "
                                     f"--resources {wanted}` (or leave out --resources)")

    def grade(self, todo: list[dict], template: Path, prepare_data: bool) -> Iterator[tuple[int, object, bool]]:
        """Grade each of ``todo`` (grade_folder's keyword arguments for one submission); yields
        ``(index, Result, cacheable)`` as they finish. A submission that could not be read is graded here
        (no kernel runs); :class:`SandboxUnavailable` from a worker stops everything."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker
        from . import grading
        if self.client is None:
            self.start()
        digest = grading.verify_template(template)
        template_tar = pack_template(template)
        pending, chances, futures = [], {}, {}
        for i, args in enumerate(todo):
            data, _ = grading._read_submission(args["submission"])
            if data is None:
                yield i, grading._grade_task(args), True
            else:
                pending.append((i, make_task(args, data, template_tar, digest, prepare_data)))
        if not pending:
            return
        host_threads: dict[str, int] = {}  # each machine's grading slots, so its kernels share its cores
        try:
            self._check_workers()
            for address, info in self._workers().items():
                host = urlparse(address).hostname
                host_threads[host] = host_threads.get(host, 0) + int(info.get("nthreads", 1))
        except Exception:
            if self.client.status == "running":
                raise
            raise ClusterUnavailable(f"lost the connection to the Dask scheduler at {self.scheduler} before "
                                     "grading; nothing was graded or written") from None

        run = uuid.uuid4().hex[:12]  # this run: the machines' workers share one dataset preparation per run

        def submit(i, task):
            task["host_threads"], task["run"] = host_threads, run
            future = self.client.submit(self.grade_fn, task, key=f"grade-{task['student']}-{uuid.uuid4().hex[:8]}",
                                        pure=False, resources=self.resources or None)
            futures[future.key] = (i, task, future)
            return future

        queue = as_completed([submit(i, task) for i, task in pending])
        start, done, total = time.monotonic(), 0, len(pending)
        try:
            for future in queue:
                i, task, _ = futures.pop(future.key)
                student, cacheable = task["student"], True
                try:
                    reply = future.result()
                except KilledWorker:
                    self._reap()
                    if chances.get(i, 0) < self.second_chances:
                        chances[i] = chances.get(i, 0) + 1
                        queue.add(submit(i, task))
                        continue
                    result, cacheable = self._failed(todo[i], "the grading worker died every time it graded this "
                                                     "submission (killed, out of memory, or the machine was lost), "
                                                     f"{(self.allowed_failures + 1) * (self.second_chances + 1)} tries "
                                                     "at most; grade it by hand or run the grader again"), False
                except CancelledError:  # only the client cancels, in the finally below: the scheduler is gone
                    raise ClusterUnavailable(
                        f"lost the connection to the Dask scheduler at {self.client.scheduler.address} after {done} of "
                        f"{total} grades. Those are cached: run the same command again (with the scheduler back) and "
                        "it grades only what is missing. The CSV was not written.") from None
                except grading.SandboxUnavailable:
                    raise  # a worker cannot sandbox: stop, with the install message (the finally cancels the rest)
                except Exception as err:  # the worker's problem, not the student's: not cached, tried next run
                    result, cacheable = self._failed(todo[i], f"the grading worker failed: {type(err).__name__}: "
                                                     f"{' '.join(str(err).split())[:200]}"), False
                else:
                    result = grading.Result(**reply["result"])
                    self.where[student] = reply["worker"]
                    if reply["template_digest"] != digest:
                        result, cacheable = self._failed(todo[i], f"worker {reply['worker']} graded with another "
                                                         "template than the one sent; not trusted"), False
                    elif reply.get("graded") is not None:
                        graded = Path(todo[i]["work"]) / "graded" / f"{student}.ipynb"
                        grading._write_atomic(graded, reply["graded"].decode("utf-8", errors="replace"))
                done += 1
                if self.verbose:
                    elapsed = time.monotonic() - start
                    left = elapsed / done * (total - done)
                    bar = "#" * int(20 * done / total)
                    print(f"[{bar:<20}] {done}/{total} graded, {_duration(elapsed)} so far, "
                          f"about {_duration(left)} left", flush=True)
                yield i, result, cacheable
        finally:
            if futures and self.client.status == "running":  # stopped early (no sandbox on a worker, ^C)
                self.client.cancel([f for _, _, f in futures.values()])  # nothing left running
            if self.client.status == "running":
                self._reap(wait=True)  # what workers killed during this run left running

    def _reap(self, wait: bool = False) -> None:
        """Have every live worker stop what the dead workers of its machine left running (reap_orphans)."""
        with contextlib.suppress(Exception):  # a worker that is gone does it before its next grade
            self.client.run(reap_orphans, wait=wait)

    @staticmethod
    def _failed(args: dict, note: str):
        from . import grading
        parts = grading.graded_parts(Path(args["template"]) / "source" / args["assignment"] / f"{args['name']}.ipynb")
        notes = "; ".join(n for n in (args.get("note", ""), note) if n)
        return grading.Result(args["student"], {k: 0.0 for k in parts}, 0.0, sum(parts.values()), "error", notes,
                              mode=args.get("mode", "full"))


# ---------------------------------------------------------------- a cluster of processes here, and the measurement

@contextlib.contextmanager
def local_processes(workers: int = 2, env: dict[str, str] | None = None) -> Iterator[SimpleNamespace]:
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1 (free ports, no dashboard),
    as an instructor starts them on lab machines, each in its own process group; yields a namespace with
    ``address`` (``tcp://127.0.0.1:PORT``), ``scheduler`` and ``workers`` (``Popen``s) and kills them all on
    exit. For the measurement and the tests."""
    import subprocess
    from distributed import Client
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    quiet = dict(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], **quiet)
    procs = [scheduler]
    try:
        members = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                     "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}"], **quiet)
                   for i in range(workers)]
        procs += members
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(workers, timeout=120)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ClusterUnavailable(f"the local scheduler at {address} did not start") from None
                time.sleep(0.5)
        yield SimpleNamespace(address=address, scheduler=scheduler, workers=members)
    finally:
        for proc in procs:
            kill_group(proc)


def kill_group(proc) -> None:
    """SIGKILL a process started by :func:`local_processes` and everything it started (a worker's nanny
    and its worker process), as when a machine is lost."""
    import signal
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def measure(n: int, source: Path, workers: int = 2, fast: bool = True, folder: Path | None = None,
            prepare_data: bool = True) -> dict[str, float]:
    """Grade ``n`` copies of the solution ``source`` (full marks) three ways and return the seconds of
    each: ``pool`` (today's thread pool, ``workers`` at a time), ``cluster`` (``workers`` Dask worker
    processes on 127.0.0.1 via ``--scheduler``) and ``killed`` (the same, one worker killed with SIGKILL
    halfway through the cluster's time). Each run starts from an empty work folder (no cache) and the
    three CSVs must be equal, or it raises."""
    import shutil
    import threading
    from . import grading
    folder = Path(folder or tempfile.mkdtemp(prefix="grading-measure-"))
    subs = folder / "submissions"
    for i in range(n):
        (subs / f"student{i:03d}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, subs / f"student{i:03d}" / Path(source).name)
    common = dict(source=source, fast=fast, prepare_data=prepare_data, verbose=False,
                  sandbox=grading.sbx.probe()[0])
    seconds: dict[str, float] = {}

    def run(name: str, **kwargs) -> str:
        out = folder / name / "grades.csv"
        start = time.monotonic()
        grading.grade_folder(subs, out, work=folder / name / "work", **common, **kwargs)
        seconds[name] = time.monotonic() - start
        print(f"{name}: {n} submissions in {seconds[name]:.0f} s ({3600 * n / seconds[name]:.0f} per hour)", flush=True)
        return out.read_text()

    expected = run("pool", workers=workers)
    package_root = str(Path(__file__).resolve().parents[2])
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    for name in ("cluster", "killed"):
        with local_processes(workers, env) as cluster:
            engine = Engine(cluster.address, verbose=False).start()
            timer = threading.Timer(seconds.get("cluster", 0) / 2, kill_group, [cluster.workers[0]])
            if name == "killed":
                timer.start()
            try:
                got = run(name, engine=engine)
            finally:
                timer.cancel()
                engine.close()
            if name == "killed" and cluster.workers[0].poll() is None:
                raise RuntimeError("the worker was not killed before the grading ended")
        if got != expected:
            raise RuntimeError(f"the {name} run's CSV differs from the pool's: see {folder}")
    return seconds


def start_engine(scheduler: str, workers: int | None = None, resources: str | None = None) -> Engine:
    """A started :class:`Engine` from the command line's ``--scheduler``, ``--workers`` and ``--resources``."""
    return Engine(scheduler, workers=workers, resources=parse_resources(resources)).start()


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.authoring.grading_cluster SUBMISSIONS [grader options] [--scheduler ...]``:
    the grader's command line (``python -m course_utils.authoring.grading --help``) that can also grade on a
    Dask cluster. ``... grading_cluster measure [-n N]``: the pool against a local cluster of processes."""
    import argparse
    from . import grading
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] != ["measure"]:
        try:
            return grading.main(argv, cluster=start_engine)
        except ClusterUnavailable as err:  # the scheduler went away mid-run
            print(f"error: {err}", file=sys.stderr)
            return 2
    from .exercise import SOURCE
    parser = argparse.ArgumentParser(prog="python -m course_utils.authoring.grading_cluster measure",
                                     description="Grade N copies of the solution with the thread pool, then on a "
                                     "local Dask cluster of processes, then with one worker killed halfway")
    parser.add_argument("-n", type=int, default=20, help="submissions (copies of the solution; default 20)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--full", action="store_true", help="full mode (default: fast mode)")
    parser.add_argument("--folder", type=Path, default=None, help="where to keep the submissions and CSVs")
    args = parser.parse_args(argv[1:])
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    seconds = measure(args.n, args.source, args.workers, fast=not args.full, folder=args.folder)
    per = {k: v / args.n for k, v in seconds.items()}
    print(f"per submission: pool {per['pool']:.1f} s, cluster {per['cluster']:.1f} s "
          f"(overhead {per['cluster'] - per['pool']:+.1f} s), one worker killed halfway {per['killed']:.1f} s; "
          f"the three CSVs are equal", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
