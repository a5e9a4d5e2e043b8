"""nbgrader's Execute step, hardened: the kernel in a sandbox, IPython restored before each test cell,
and a test cell that scores only when it ran to its last line.

The grader writes an ``nbgrader_config.py`` into each submission's (trusted) course folder that puts
:class:`GuardedExecute` in the place of nbgrader's ``Execute`` (see :func:`config_text`). nbgrader,
nbclient, the gradebook and the notebook files stay outside the sandbox; only the kernel runs inside.

- :class:`SandboxedKernelManager` starts the kernel with :mod:`.sandbox` (bubblewrap) and makes it
  talk ZMQ over unix sockets (``ipc``) in a folder bound into the sandbox: the sandbox has no network.
  The kernel command is always this Python's ``ipykernel_launcher``, whatever kernelspec the notebook names.
- :class:`GuardedExecute` sends :mod:`.kernel_guard` to the kernel before the first cell (while it is
  pristine) and calls its ``restore`` before and right after every graded test cell (``user_expressions``
  of an empty request, which the notebook's transformers never see). Each test cell gets a random
  ``print(nonce)`` as its last line; a test cell whose nonce does not show up (it did not run to its
  end), whose restore failed, or during which the hooks were put back gets an error output, so
  nbgrader's ``SaveAutoGrades`` scores it zero. A cell that runs past the time limit is interrupted;
  a kernel that ignores the interrupt, or dies, is stopped and the cells after it are not run (their
  tests score zero). What happened is written to a JSON events file for the grader's notes.
"""
from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Dict, Float, Int, List, Unicode, default

from . import sandbox

GUARD_SOURCE = (Path(__file__).resolve().parent / "kernel_guard.py").read_text()

PREPROCESSORS = [  # nbgrader's autograde list, with Execute replaced
    "course_utils.authoring.grader_kernel.GuardedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs in bubblewrap and listens on unix sockets."""

    course_dir = Unicode("", help="host folder that contains the course package copy").tag(config=True)
    data_dir = Unicode("", help="host dataset folder, bound read-only at /data").tag(config=True)
    submission_dir = Unicode("", help="host folder of the student's own files, copied into the kernel's cwd"
                             ).tag(config=True)
    state_dir = Unicode("", help="trusted folder for the sandbox spec and what to clean up").tag(config=True)
    kernel_env = Dict(help="environment variables for the kernel (nothing else is passed on)").tag(config=True)
    limits = Dict(help="fields of sandbox.Limits").tag(config=True)
    sandbox_uid = Int(sandbox.DEFAULT_SANDBOX_UID, help="host uid of the sandbox when the grader is root"
                      ).tag(config=True)
    cgroup = Bool(True, help="root only: a cgroup with memory and pids limits, when writable").tag(config=True)

    @default("transport")
    def _default_transport(self):
        return "ipc"

    async def _async_pre_start_kernel(self, **kw):
        self.transport = "ipc"
        state = Path(self.state_dir or tempfile.mkdtemp(prefix="grader-state-"))
        state.mkdir(parents=True, exist_ok=True)
        # Unix socket paths must stay under 108 bytes: the run folder is a short one in /tmp.
        self._run_root = tempfile.mkdtemp(prefix="gsbx-")
        run_dir = os.path.join(self._run_root, "r")
        os.mkdir(run_dir)
        sandbox.mount_run_dir(run_dir, sandbox.Limits(**self.limits).run_dir)  # root: a size-limited tmpfs
        self.connection_file = os.path.join(run_dir, "kernel.json")
        self.ip = os.path.join(run_dir, "k")  # the sockets are r/k-<port>
        spec = sandbox.make_spec(run_dir, course=self.course_dir or None, data=self.data_dir or None,
                                 submission=self.submission_dir or None, env=dict(self.kernel_env),
                                 limits=sandbox.Limits(**self.limits), sandbox_uid=self.sandbox_uid,
                                 cgroup=self.cgroup, trusted_dir=state)
        self._spec_path = sandbox.write_spec(spec, state / "spec.json")
        self._cgroup_record = spec.cgroup_record
        (state / "cleanup.json").write_text(json.dumps({"run_root": self._run_root,
                                                         "cgroups": spec.cgroup_record}))
        kw.pop("env", None)  # the sandbox builds the kernel's environment from scratch
        kw["cwd"] = "/"      # and its working directory (a private tmpfs)
        return await super()._async_pre_start_kernel(**kw)

    pre_start_kernel = _async_pre_start_kernel

    def format_kernel_cmd(self, extra_arguments=None):
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file, *(extra_arguments or [])]
        return sandbox.command(self._spec_path, kernel)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            cleanup_sandbox(getattr(self, "_run_root", None), getattr(self, "_cgroup_record", None))

    cleanup_resources = _async_cleanup_resources


def cleanup_sandbox(run_root: str | None, cgroup_record: str | None) -> None:
    """Kill what is left in the sandbox's cgroups and remove its run folder (safe to call twice)."""
    if cgroup_record and os.path.exists(cgroup_record):
        try:
            sandbox.cgroup_cleanup(json.loads(Path(cgroup_record).read_text()))
        except (OSError, ValueError):
            pass
    if run_root:
        sandbox.unmount_run_dir(os.path.join(run_root, "r"))
        shutil.rmtree(run_root, ignore_errors=True)


class GuardedExecute(Execute):
    """nbgrader's Execute with a sandboxed kernel, a restore step and a nonce per graded test cell."""

    sandbox = Bool(True, help="run the kernel in bubblewrap").tag(config=True)
    guard = Bool(True, help="restore IPython before each test cell and check its nonce").tag(config=True)
    bindings = List(help="[name, module, attribute or None] for each name the instructor's cells import"
                    ).tag(config=True)
    protect = List(Unicode(), ["course_utils", "course_utils.*"],
                   help="fnmatch patterns of further modules to protect").tag(config=True)
    events_file = Unicode("", help="JSON file for what happened (read by the grader)").tag(config=True)
    guard_timeout = Float(120, help="seconds for the snapshot or a restore to answer").tag(config=True)

    def __init__(self, **kw):
        kw.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(**kw)
        if not self.sandbox:
            self.kernel_manager_class = AsyncKernelManager

    # -------------------------------------------------------------- the notebook
    def preprocess(self, nb, resources=None, km=None):
        self._events: list[dict] = []
        self._guard_module: str | None = None
        self._snapshot_tried = False
        self._stopped: str | None = None
        start = time.perf_counter()
        try:
            return super().preprocess(nb, resources, km)
        except Exception as err:  # a kernel that never started, or died in a way nbclient did not report per cell
            self._event(kind="failed", error=f"{type(err).__name__}: {err}"[:500])
            raise
        finally:
            self._event(kind="done", seconds=round(time.perf_counter() - start, 2))
            if self.events_file:
                Path(self.events_file).write_text(json.dumps(self._events, indent=1))

    def _event(self, **fields):
        self._events.append(fields)

    # -------------------------------------------------------------- the kernel-side guard
    def _ask(self, expression: str, timeout: float) -> str | None:
        """Evaluate ``expression`` in the kernel as a user expression; its str, or None (no answer / error)."""
        msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"r": expression})
        deadline = time.monotonic() + timeout

        async def wait():
            from queue import Empty
            while time.monotonic() < deadline:
                try:
                    msg = await self.kc.shell_channel.get_msg(timeout=min(1.0, max(0.05, deadline - time.monotonic())))
                except Empty:
                    if not await self.kc.is_alive():
                        return None
                    continue
                if msg["parent_header"].get("msg_id") == msg_id:
                    return msg
            return None

        reply = run_sync(wait)()
        if reply is None:
            return None
        result = reply["content"].get("user_expressions", {}).get("r", {})
        if result.get("status") != "ok":
            return None
        try:
            value = ast.literal_eval(result["data"]["text/plain"])
        except (KeyError, ValueError, SyntaxError):
            return None
        return value if isinstance(value, str) else None

    def _snapshot(self, index: int) -> None:
        self._snapshot_tried = True
        name = "_grader_guard_" + secrets.token_hex(8)
        expression = (f"(lambda m: (exec({GUARD_SOURCE!r}, m.__dict__), "
                      f"__import__('sys').modules.__setitem__({name!r}, m), "
                      f"m.snapshot({list(map(list, self.bindings))!r}, {list(self.protect)!r}))[-1])"
                      f"(__import__('types').ModuleType({name!r}))")
        summary = self._ask(expression, self.guard_timeout)
        self._event(kind="snapshot", cell=index, ok=summary is not None, summary=summary)
        self._guard_module = name if summary else None

    def _restore(self) -> tuple[bool, dict]:
        if not self._guard_module:
            return False, {"error": "the grader could not take its snapshot of the kernel"}
        token = secrets.token_hex(16)
        answer = self._ask(f"__import__('sys').modules[{self._guard_module!r}].restore({token!r})",
                           self.guard_timeout)
        if answer is None:
            return False, {"error": "the kernel did not answer the grader's restore step"}
        head, _, body = answer.partition("|")
        try:
            details = json.loads(body)
        except ValueError:
            return False, {"error": "the restore step gave a malformed answer"}
        if head != token:
            details.setdefault("error", "the restore step did not complete (a thread of the notebook survived)")
            return False, details
        return True, details

    # -------------------------------------------------------------- each cell
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        meta = cell.metadata.get("nbgrader", {})
        test = bool(meta.get("grade")) and not meta.get("solution")
        gid = meta.get("grade_id", f"cell {index}")
        if self._stopped:
            cell.outputs = [_error("GraderCellNotRun", f"not run: {self._stopped}")] if test else []
            return cell, resources
        if self.guard and not self._snapshot_tried:
            self._snapshot(index)  # before the first code cell: the kernel is still pristine
        if not (test and self.guard):
            return self._execute(cell, resources, index, gid, test)
        ok, details = self._restore()
        self._event(kind="restore", cell=index, grade_id=gid, when="before", ok=ok, **details)
        if not ok:
            cell.outputs = [_error("GraderRestoreFailed", f"the grader could not reset the kernel before this "
                                   f"test ({details.get('error', 'unknown')}); the test scores zero")]
            return cell, resources
        nonce = "grader-nonce-" + secrets.token_hex(16)
        source = cell.source
        cell.source = with_nonce(source, nonce)
        try:
            cell, resources = self._execute(cell, resources, index, gid, test)
        finally:
            cell.source = source
        seen = False
        for out in list(cell.get("outputs", [])):
            if out.get("output_type") == "stream" and nonce in out.get("text", ""):
                seen = True
                out["text"] = out["text"].replace(nonce + "\n", "").replace(nonce, "")
                if not out["text"]:
                    cell.outputs.remove(out)
        errors = any(o.get("output_type") == "error" for o in cell.outputs)
        if not seen and not errors:
            self._event(kind="no_nonce", cell=index, grade_id=gid)
            cell.outputs.append(_error("GraderCellIncomplete",
                                       "the test cell did not run to its last line; it scores zero"))
        if self._stopped:
            return cell, resources
        ok, details = self._restore()  # anything put back during the test voids it
        self._event(kind="restore", cell=index, grade_id=gid, when="after", ok=ok, **details)
        if (not ok or details.get("undone")) and not errors:
            cell.outputs.append(_error("GraderTamperedDuringTest", "IPython's hooks or protected modules were "
                                       "changed while this test ran; it scores zero"))
        return cell, resources

    def _execute(self, cell, resources, index, gid, test):
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._stopped = f"the kernel died while cell {index} ran (out of memory, a process limit, or os._exit)"
            self._event(kind="kernel_died", cell=index, grade_id=gid if test else None)
            cell.outputs = list(cell.get("outputs", [])) + [_error("DeadKernelError", self._stopped)]
            return cell, resources
        except CellTimeoutError:  # the interrupt at the time limit did not bring the kernel back to idle
            cell.outputs = list(cell.get("outputs", [])) + [_error("CellTimeoutError", "")]
        if any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs):
            self._event(kind="timeout", cell=index, grade_id=gid if test else None, seconds=self.timeout)
            grace = min(30.0, max(5.0, float(self.timeout or 30)))
            if self._ask("'alive'", grace) is None:  # the interrupt did not stop it: stop the kernel
                self._stopped = (f"cell {index} ran past the {self.timeout} s time limit and ignored the "
                                 "interrupt, so the kernel was stopped")
                self._event(kind="kernel_stopped", cell=index)
                try:
                    run_sync(self.km.shutdown_kernel)(now=True)
                except Exception:  # already gone
                    pass
        return cell, resources


def with_nonce(source: str, nonce: str) -> str:
    """``source`` with ``print(nonce)`` run last. A cell that ends with an expression keeps that value as
    its result (nbgrader gives partial credit for a number shown as the result of a test cell)."""
    line = f"print({nonce!r})"
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics): append
        return f"{source}\n{line}"
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr) or source.rstrip().endswith(";"):
        return f"{source}\n{line}"
    lines = source.splitlines()
    head = "\n".join(lines[:last.lineno - 1] + [lines[last.lineno - 1][:last.col_offset]])
    var = "_grader_result_" + nonce[-8:]
    return f"{head}{var} = ({ast.get_source_segment(source, last)})\n{line}\n{var}"


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def config_text(*, sandboxed: bool, guard: bool, bindings: list, events_file: str, course_dir: str = "",
                data_dir: str = "", submission_dir: str = "", state_dir: str = "", kernel_env: dict | None = None,
                limits: dict | None = None, sandbox_uid: int = sandbox.DEFAULT_SANDBOX_UID) -> str:
    """The ``nbgrader_config.py`` of one submission's course folder."""
    lines = [
        "c = get_config()",
        f"c.Autograde.autograde_preprocessors = {PREPROCESSORS!r}",
        f"c.GuardedExecute.sandbox = {sandboxed!r}",
        f"c.GuardedExecute.guard = {guard!r}",
        f"c.GuardedExecute.bindings = {bindings!r}",
        f"c.GuardedExecute.events_file = {events_file!r}",
        f"c.SandboxedKernelManager.course_dir = {course_dir!r}",
        f"c.SandboxedKernelManager.data_dir = {data_dir!r}",
        f"c.SandboxedKernelManager.submission_dir = {submission_dir!r}",
        f"c.SandboxedKernelManager.state_dir = {state_dir!r}",
        f"c.SandboxedKernelManager.kernel_env = {kernel_env or {}!r}",
        f"c.SandboxedKernelManager.limits = {limits or {}!r}",
        f"c.SandboxedKernelManager.sandbox_uid = {sandbox_uid!r}",
    ]
    return "\n".join(lines) + "\n"
