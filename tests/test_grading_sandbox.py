"""The grader's building blocks, each on its own and in seconds: the bubblewrap sandbox (what a process
inside sees and may do), the nonce added to test cells, and the review checks that read a submission.

The sandbox tests run small bounded programs with tight limits (a 40-process cap, a 1 MB file cap);
they skip where bubblewrap cannot run, unless ``GRADER_REQUIRE_SANDBOX=1`` (CI) makes that an error.
"""
from __future__ import annotations

import ast
import json
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_utils.authoring import sandbox
from course_utils.authoring.submission_checks import python_source, review_flags

USABLE, WHY = sandbox.probe()
if not USABLE and os.environ.get("GRADER_REQUIRE_SANDBOX") == "1":
    raise RuntimeError(f"GRADER_REQUIRE_SANDBOX=1 but the sandbox cannot run here: {WHY}")
needs_sandbox = pytest.mark.skipif(not USABLE, reason=f"no sandbox here: {WHY}")
REPO = Path(__file__).resolve().parents[1]


def run_inside(code: str, tmp_path: Path, limits: sandbox.Limits | None = None, timeout: float = 60,
               course: Path | None = None, data: Path | None = None, submission: Path | None = None):
    """Run ``python -c code`` in a sandbox; (exit code, stdout + stderr, seconds)."""
    trusted = Path(tempfile.mkdtemp(prefix="gsbx-test-"))
    run_dir = trusted / "r"
    run_dir.mkdir()
    spec = sandbox.make_spec(run_dir, course=course, data=data, submission=submission, env={"MARK": "x"},
                             limits=limits or sandbox.Limits(), trusted_dir=tmp_path / "state")
    path = sandbox.write_spec(spec, tmp_path / "state" / "spec.json")
    start = time.perf_counter()
    try:
        done = subprocess.run(sandbox.command(path, [sys.executable, "-c", textwrap.dedent(code)]),
                              capture_output=True, text=True, timeout=timeout)
    finally:
        if Path(spec.cgroup_record).exists():
            sandbox.cgroup_cleanup(json.loads(Path(spec.cgroup_record).read_text()))
        subprocess.run(["rm", "-rf", str(trusted)], check=False)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - start


@needs_sandbox
def test_inside_the_sandbox_only_what_was_bound_is_visible_and_writable(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "answer.txt").write_text("42")
    (tmp_path / "data").mkdir()
    code = f"""
    import os
    print("cwd", os.getcwd(), sorted(os.listdir(".")))
    # the Python environment is bound read-only where it lives; a venv inside the repository (.venv, as
    # `make install` makes it) therefore shows the repository's folder name, holding that venv alone
    repo = {str(REPO)!r}
    print("repo visible", sorted(set(os.listdir(repo)) - {{".venv"}}) if os.path.isdir(repo) else [],
          os.path.exists(repo + "/course_utils"), os.path.exists(repo + "/notebooks"), os.path.exists({str(tmp_path)!r}))
    print("data", sorted(os.listdir("/data")), os.environ.get("COURSE_DATA"), os.environ.get("MARK"))
    print("home", os.environ["HOME"], "user", os.getuid())
    for place in ("/data/x", "/usr/x", "/opt/course/x", "./x", "/tmp/x"):
        try:
            open(place, "w").write("x")
            print("wrote", place)
        except OSError as err:
            print("refused", place, err.errno)
    print("env keys", sorted(k for k in os.environ if k.startswith(("PYTEST", "GRADER", "SSH", "AWS"))))
    """
    rc, out, _ = run_inside(code, tmp_path, course=tmp_path / "data", data=tmp_path / "data",
                            submission=tmp_path / "mine")
    assert rc == 0, out
    assert "cwd /home/student/work ['answer.txt']" in out
    assert "repo visible [] False False False" in out
    assert "data [] /data x" in out and "home /home/student user 1000" in out
    assert "wrote ./x" in out and "wrote /tmp/x" in out
    for place in ("/data/x", "/usr/x", "/opt/course/x"):
        assert f"refused {place} 30" in out  # EROFS
    assert "env keys []" in out


@needs_sandbox
def test_no_network_not_even_the_hosts_loopback(tmp_path):
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = f"""
    import socket
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=3)
        print("connected")
    except OSError as err:
        print("refused", type(err).__name__)
    print("interfaces", [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]])
    """
    rc, out, _ = run_inside(code, tmp_path)
    with pytest.raises(socket.timeout):
        server.accept()  # nothing ever arrived
    server.close()
    assert rc == 0 and "refused" in out and "interfaces ['lo']" in out, out


@needs_sandbox
def test_limits_on_processes_and_file_size(tmp_path):
    code = """
    import os, resource, signal, time
    kids = []
    try:
        for _ in range(200):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            kids.append(pid)
    except OSError as err:
        print("fork stopped at", len(kids), err.errno)
    for pid in kids:
        os.kill(pid, signal.SIGKILL)
    try:
        with open("big", "wb") as fh:
            for _ in range(4):
                fh.write(b"x" * (512 << 10))
        print("wrote 2 MB")
    except OSError as err:
        print("file stopped", err.errno)
    print("limits", resource.getrlimit(resource.RLIMIT_NPROC)[0], resource.getrlimit(resource.RLIMIT_DATA)[0])
    """
    rc, out, _ = run_inside(code, tmp_path, limits=sandbox.Limits(processes=40, file_size=1 << 20, memory=1 << 30))
    assert rc == 0, out
    stopped = int(out.split("fork stopped at ")[1].split()[0])
    assert 20 <= stopped < 40, out
    assert "file stopped 27" in out  # EFBIG
    assert f"limits 40 {1 << 30}" in out


@needs_sandbox
def test_a_detached_daemon_dies_with_the_sandbox(tmp_path):
    mark = f"sandbox-test-daemon-{secrets.token_hex(4)}"
    code = f"""
    import os, signal, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c",
                     "import signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\ntime.sleep(60)", {mark!r}])
        os._exit(0)
    time.sleep(0.5)
    print("pid", os.getpid())
    """
    rc, out, seconds = run_inside(code, tmp_path)
    assert rc == 0 and "pid " in out, out
    assert int(out.split("pid ")[1].split()[0]) < 10  # its own PID namespace
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", mark], capture_output=True, text=True).stdout.split()
    assert left == [], f"the daemon survived: {left}"
    assert seconds < 30


def test_the_probe_says_what_to_install_when_bwrap_is_missing(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, message = sandbox.probe()
    assert not ok and "bubblewrap" in message and "apt-get install bubblewrap" in message


def test_bind_sources_the_sandbox_user_cannot_reach_are_detected(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "f").write_text("x")
    os.chmod(private, 0o700)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    uid = 12345  # not the owner
    assert not sandbox._can_reach(str(private / "f"), uid, uid)
    assert sandbox._can_reach("/usr/bin", uid, uid)


# ---------------------------------------------------------------- the nonce

def test_the_nonce_is_printed_last_and_a_final_expression_keeps_its_value():
    from course_utils.authoring.grader_kernel import with_nonce
    assert with_nonce("assert x == 1", "N") == "assert x == 1\nprint('N')"
    out = with_nonce("y = 2\ny * 3", "grader-nonce-abcdef12")
    assert out.splitlines()[-2] == "print('grader-nonce-abcdef12')"
    namespace = {}
    exec(compile(ast.parse(out), "cell", "exec"), {"print": lambda *a: None}, namespace)
    assert namespace["_grader_result_abcdef12"] == 6 and out.splitlines()[-1] == "_grader_result_abcdef12"
    assert with_nonce("%time x = 1", "N").endswith("\nprint('N')")  # IPython syntax: appended


# ---------------------------------------------------------------- review checks

def _flags(*cells, handed_out=None):
    return [str(f) for f in review_flags(new_notebook(cells=[new_code_cell(c) for c in cells]), handed_out)]


def test_honest_code_is_not_flagged():
    flags = _flags("import numpy as np\nimport torch\nfrom torch import nn\nfrom course_utils import metrics, train",
                   "class Net(nn.Module):\n    def forward(self, x):\n        return x\nmodel = Net()\nmodel.eval()\n"
                   "torch.backends.cudnn.benchmark = True\nplt_settings = {'dpi': 72}\nsetattr(model, 'x', 1)",
                   "%matplotlib inline\nhistory = train.fit(model, [], epochs=1)\nprint(np.zeros(3))",
                   "np.save('/tmp/scratch.npy', np.zeros(3))")
    assert flags == []


@pytest.mark.parametrize("code, expected", [
    ("get_ipython().ast_transformers.append(T())", "IPython's machinery"),
    ("ip = get_ipython()\nip.input_transformers_post.append(f)", "input_transformers_post"),
    ("from IPython.core.interactiveshell import InteractiveShell\nInteractiveShell.run_cell = f", "IPython"),
    ("import builtins\nbuiltins.len = lambda x: 0", "builtins"),
    ("import sys\nsys.modules['course_utils.train'] = fake", "sys.modules"),
    ("import sys\nframe = sys._getframe(1)", "stack frames"),
    ("from course_utils import train\ntrain.evaluate = lambda *a: 1.0", "changes the course package"),
    ("import course_utils.metrics as m\nm.iou_per_class.__code__ = g.__code__", "changes the course package"),
    ("import numpy as np\nnp.allclose = lambda *a, **k: True", "changes library code"),
    ("import course_utils\nprint(course_utils.__file__)", "where code lives"),
    ("exec(open('x').read())", "dynamic code: exec()"),
    ("import os\nos.fork()", "processes"),
    ("import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9')", "network"),
    ("open('/home/teacher/grades.csv', 'a')", "absolute path"),
    ("open('/tmp/grading/work/results/x.json', 'w')", "absolute path"),   # the host's /tmp is not the sandbox's
    ("!curl example.org", "a shell command"),
    ("from course_utils.models import UNet\nMyUNet = UNet", "re-use of the course's UNet"),
    ("from course_utils import metrics\ndef confusion_matrix(p, t):\n    return metrics.confusion_matrix(p, t, 21)",
     "re-use of the course's metrics"),
    ("import segmentation_models_pytorch as smp\nnet = smp.Unet('resnet34')", "ready-made segmentation network"),
])
def test_touching_the_grading_or_reusing_course_solutions_is_flagged(code, expected):
    flags = _flags(code)
    assert any(expected in f for f in flags), flags


def test_constants_of_the_course_are_not_reuse_and_unchanged_cells_are_not_read():
    assert _flags("from course_utils.voc import NUM_CLASSES, IGNORE_INDEX\nn = NUM_CLASSES") == []
    given = new_notebook(cells=[new_code_cell("x = get_ipython()")])
    assert _flags("x = get_ipython()", handed_out=given) == []
    flags = review_flags(new_notebook(cells=[new_code_cell("def f(:\n    pass")]))
    assert [f.what for f in flags] == ["not valid Python (it cannot run as written)"]


def test_reuse_in_a_test_cell_is_not_flagged_but_tampering_there_is():
    """The visible Part 6 check scores with course_utils.metrics; a submission whose test cell differs from
    the handed-out one (the instructor's solution, or an edited comment) must not flag every honest student."""
    code = "from course_utils import metrics\nscore = metrics.mean_iou"
    def nb(meta):
        cell = new_code_cell(code)
        cell.metadata["nbgrader"] = meta
        return new_notebook(cells=[cell])
    test_cell = {"grade": True, "solution": False, "locked": True, "grade_id": "test_final_miou", "points": 2}
    solution_cell = {"grade": False, "solution": True, "locked": False, "grade_id": "metrics"}
    assert [f.what for f in review_flags(nb(test_cell))] == []
    assert any("re-use of the course's metrics" in f.what for f in review_flags(nb(solution_cell)))
    tamper = nb(test_cell)
    tamper.cells[0].source = "import builtins\nbuiltins.len = lambda x: 0"
    assert any("builtins" in str(f) for f in review_flags(tamper))


def test_magics_become_calls_that_the_checks_can_read():
    assert python_source("%time x = 1\n!ls\ny = 2") == "__ipython_magic__('%time x = 1')\n__ipython_magic__('!ls')\ny = 2"
    assert python_source("%%bash\necho hi").startswith("__ipython_magic__(")
    assert nbformat  # the notebook format is what review_flags reads


@needs_sandbox
@pytest.mark.skipif(os.geteuid() != 0, reason="the CPU quota is a cgroup's: root only")
def test_a_cpu_quota_caps_what_a_sandbox_burns_whatever_it_starts(tmp_path):
    """Two busy processes (each in its own session) for 2 s of wall time: with a quota of 0.1 core the
    sandbox gets about 0.2 s of CPU time in all (without one, each would take up to a whole core), so a
    neighbour's grade keeps its share."""
    code = """
    import os, resource, time
    kids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            end = time.monotonic() + 2
            while time.monotonic() < end:
                pass
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("cpu", usage.ru_utime + usage.ru_stime)
    """
    rc, out, _ = run_inside(code, tmp_path, limits=sandbox.Limits(cpus=0.1))
    if "no cgroup limits" in out:
        pytest.skip("the cgroup file system is not writable here")
    assert rc == 0, out
    cpu = float(out.split("cpu ")[1].split()[0])
    assert cpu < 0.35, f"{cpu:.2f} s of CPU in 2 s of wall time with a 0.1-core quota: {out}"


@needs_sandbox
@pytest.mark.skipif(os.geteuid() != 0, reason="a size-limited run folder is a tmpfs mounted by root")
def test_the_one_writable_host_folder_is_size_limited(tmp_path):
    """The run folder (sockets, the driver's answers) is a tmpfs of Limits.run_dir bytes: a notebook that
    writes without end fills that, not the grader's disk."""
    trusted = Path(tempfile.mkdtemp(prefix="gsbx-test-"))
    run_dir = trusted / "r"
    run_dir.mkdir()
    try:
        assert sandbox.mount_run_dir(run_dir, 8 << 20)
        spec = sandbox.make_spec(run_dir, course=None, data=None, submission=None, env={},
                                 trusted_dir=tmp_path / "state")
        path = sandbox.write_spec(spec, tmp_path / "state" / "spec.json")
        code = textwrap.dedent(f"""
        import errno
        written = 0
        try:
            for k in range(6):
                with open("{run_dir}/fill-%d" % k, "wb") as fh:
                    fh.write(b"x" * (2 << 20))
                written += 2
        except OSError as err:
            print("stopped", errno.errorcode[err.errno], "after", written, "MB")
        """)
        done = subprocess.run(sandbox.command(path, [sys.executable, "-c", code]), capture_output=True, text=True,
                              timeout=60)
        assert "stopped ENOSPC after" in done.stdout, done.stdout + done.stderr
        assert int(done.stdout.split("after ")[1].split()[0]) <= 8
    finally:
        sandbox.unmount_run_dir(run_dir)
        subprocess.run(["rm", "-rf", str(trusted)], check=False)
    assert not os.path.ismount(run_dir)
