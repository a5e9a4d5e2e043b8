"""Phase 1 of grading the exercise: run the student's notebook in the sandbox, then the grader's driver.

``python -m course_utils.authoring.phase1 SPEC.json`` (the grader starts it, one process per submission,
with the notebook time limit around it). This process is the grader's side of the kernel: nbclient, the
notebook file and the answers folder stay outside; only the kernel runs in the sandbox (bubblewrap, see
:mod:`.sandbox`), as the student's code and the driver (:mod:`.phase1_driver`) do.

- The submission's code cells run in order, except the exercise's test cells (the grader does not need
  them, and a student who deleted or edited them loses nothing) and the cells after the last one (the
  comparison with smp models, which the grade does not use). Errors do not stop the run: each part is
  answered or not on its own.
- A cell that runs longer than the cell time limit is interrupted; a kernel that ignores the interrupt, or
  dies, is stopped and the rest is not run. Each cell's printed output is capped: the student can print
  gigabytes, this process keeps at most :data:`MAX_OUTPUT` characters of it.
- Then the driver runs in the same kernel and writes its answers into the sandbox's run folder; they are
  copied out here (regular files with the expected names only, :data:`MAX_ANSWERS` bytes in all) before
  the kernel is stopped. What happened is written to the events file for the grader's notes.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_notebook

from . import phase1_driver
from .grader_kernel import SandboxedKernelManager

MAX_OUTPUT = 20_000          # characters of printed output kept per cell (the rest is dropped as it arrives)
MAX_ANSWERS = 300 << 20      # bytes of answers copied out of the sandbox
FINAL_PART = "test_final_miou"


def is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def cells_to_run(nb) -> list[tuple[int, str]]:
    """``(index in the submission, source)`` of the code cells Phase 1 runs."""
    last = None
    for index, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == FINAL_PART:
            last = index
    return [(index, cell.get("source", "")) for index, cell in enumerate(nb.cells)
            if cell.get("cell_type") == "code" and not is_test_cell(cell) and (last is None or index < last)]


def driver_source(out_dir: str, seed: int, fast: bool, data_root: str) -> str:
    """The cell that runs the driver in the student's kernel (in a namespace of its own)."""
    return (f"_grader_ns = {{'__name__': '_grader_phase1'}}\n"
            f"exec(compile({phase1_driver.SOURCE!r}, '<grader-driver>', 'exec'), _grader_ns)\n"
            f"_grader_ns['run'](globals(), {out_dir!r}, {int(seed)!r}, {bool(fast)!r}, {data_root!r})\n")


class _Client(NotebookClient):
    """nbclient with each cell's output capped as it arrives."""

    def output(self, outs, msg, display_id, cell_index):
        kept = sum(len(str(o.get("text", ""))) + len(json.dumps(o.get("data", {}))) for o in outs)
        if msg["msg_type"] != "error" and kept > MAX_OUTPUT:
            return None
        if msg["msg_type"] == "error":
            content = msg["content"]
            content["evalue"] = str(content.get("evalue", ""))[:2000]
            content["traceback"] = [str(line)[:2000] for line in content.get("traceback", [])[-20:]]
        return super().output(outs, msg, display_id, cell_index)


def _alive(client: NotebookClient, grace: float) -> bool:
    """Does the kernel answer an empty request within ``grace`` seconds?"""
    msg_id = client.kc.execute("", silent=True, store_history=False)
    deadline = time.monotonic() + grace

    async def wait():
        from queue import Empty
        while time.monotonic() < deadline:
            try:
                msg = await client.kc.shell_channel.get_msg(timeout=min(1.0, max(0.05, deadline - time.monotonic())))
            except Empty:
                if not await client.kc.is_alive():
                    return False
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    return bool(run_sync(wait)())


def copy_answers(src: Path, dest: Path) -> list[str]:
    """Copy the driver's answer files from ``src`` (the sandbox's folder) to ``dest``; returns problems."""
    problems, total = [], 0
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("answers.json", *(f"part{k}.npz" for k in range(1, 7))):
        path = src / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if not os.path.isfile(path) or os.path.islink(path):
            problems.append(f"{name} is not a plain file")
            continue
        total += st.st_size
        if total > MAX_ANSWERS:
            problems.append(f"the answers are over {MAX_ANSWERS >> 20} MB; {name} and the rest were not read")
            break
        with open(path, "rb") as fh:
            data = fh.read(MAX_ANSWERS + 1)
        (dest / name).write_bytes(data)
    return problems


def run(spec: dict) -> int:
    events: list[dict] = []
    events_file = Path(spec["events"])
    deadline = time.monotonic() + float(spec["notebook_timeout"])

    def event(**fields):
        events.append(fields)
        events_file.write_text(json.dumps(events, indent=1))

    try:
        nb = nbformat.reads(Path(spec["notebook"]).read_text(errors="replace"), as_version=4)
    except Exception as err:  # not JSON, not a notebook
        event(kind="unreadable", error=f"{type(err).__name__}: {err}"[:300])
        return 3
    chosen = cells_to_run(nb)
    run_nb = new_notebook(cells=[new_code_cell(source) for _, source in chosen])
    run_nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    scratch = None
    if spec["sandbox"]:
        km = SandboxedKernelManager(**spec["kernel_manager"])
    else:
        scratch = tempfile.mkdtemp(prefix="grader-nosandbox-")
        km = AsyncKernelManager(kernel_name="python3")
    cell_timeout = float(spec["cell_timeout"])
    client = _Client(run_nb, km=km, timeout=int(cell_timeout), allow_errors=True, interrupt_on_timeout=True,
                     error_on_timeout={"ename": "CellTimeoutError", "evalue": "", "traceback": []},
                     kernel_name="python3", record_timing=False, startup_timeout=120,
                     resources={"metadata": {"path": scratch or "/"}})
    start = time.perf_counter()
    try:
        with client.setup_kernel():
            event(kind="started")
            out_dir = os.path.join(km._run_root, "r", "answers") if spec["sandbox"] else os.path.join(scratch, "answers")
            stopped = None
            slowest: tuple = (None, 0.0)   # (notebook cell index, seconds): what an instructor compares to the limit
            run_nb.cells.append(new_code_cell(driver_source(out_dir, spec["seed"], spec["fast"], spec["data_root"])))
            cells = list(zip([i for i, _ in chosen] + ["driver"], run_nb.cells))
            for position, (index, cell) in enumerate(cells):
                remaining = deadline - time.monotonic()
                if remaining < 5:
                    stopped = "notebook"
                    event(kind="notebook_timeout", cell=index)
                    break
                limit = float(spec["driver_timeout"]) if index == "driver" else cell_timeout
                client.timeout = int(max(1, min(limit, remaining)))
                began = time.perf_counter()
                try:
                    client.execute_cell(cell, position)
                except DeadKernelError:
                    event(kind="kernel_died", cell=index)
                    stopped = "died"
                    break
                except CellTimeoutError:
                    cell.outputs = [*cell.get("outputs", []), nbformat.v4.new_output("error", ename="CellTimeoutError")]
                took = time.perf_counter() - began
                if index != "driver" and took > slowest[1]:
                    slowest = (index, round(took, 1))
                errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                if any(o.get("ename") == "CellTimeoutError" for o in errors):
                    event(kind="timeout", cell=index, seconds=client.timeout)
                    if not _alive(client, min(30.0, max(5.0, cell_timeout))):
                        event(kind="kernel_stopped", cell=index)
                        stopped = "stopped"
                        break
                elif errors:
                    e = errors[-1]
                    event(kind="error", cell=index, error=" ".join(f"{e.get('ename', 'Error')}: {e.get('evalue', '')}".split())[:300])
            problems = copy_answers(Path(out_dir), Path(spec["answers"]))
            event(kind="answers", problems=problems, stopped=stopped, slowest_cell=list(slowest))
    except Exception as err:  # the kernel did not start (the sandbox), or the kernel broke the protocol
        event(kind="failed", started=any(e.get("kind") == "started" for e in events),
              error=f"{type(err).__name__}: {err}"[:500])
        return 4
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        event(kind="done", seconds=round(time.perf_counter() - start, 2))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m course_utils.authoring.phase1 SPEC.json", file=sys.stderr)
        return 2
    return run(json.loads(Path(argv[0]).read_text()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
