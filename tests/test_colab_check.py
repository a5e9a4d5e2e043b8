"""The Colab replica's pure parts (course_utils.authoring.colab_check): no venv is built here.

`make colab-check` itself runs the notebooks on Colab's versions (minutes); these tests check, in
seconds, what it is built from: the freeze parser, the constraints file, the google.colab stand-in,
the git config that serves the release offline, and the kernel's environment.
"""
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import nbformat
import pytest

from course_utils.authoring import colab_check as cc
from course_utils.authoring.conventions import GITHUB_REPO, REPO_NAME

FREEZE = """# Do not modify this file directly; it is generated via
#  $ python3 -m pip freeze
absl-py==1.4.0
cucim-cu12 @ https://pypi.nvidia.com/cucim-cu12/cucim_cu12-26.2.0-cp312-cp312-manylinux_2_28_x86_64.whl
google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz
huggingface_hub==1.17.0
jupyter_client==7.4.9
PyYAML==6.0.3
torch==2.11.0+cu128
torchvision==0.26.0+cu128
typing-extensions>=4.0
not a requirement at all

ipython == 7.34.0
"""


def test_parse_freeze_normalises_names_drops_local_labels_and_skips_what_is_not_a_pin():
    found = cc.parse_freeze(FREEZE)
    assert found == {"absl-py": "1.4.0", "huggingface-hub": "1.17.0", "jupyter-client": "7.4.9", "pyyaml": "6.0.3",
                     "torch": "2.11.0", "torchvision": "0.26.0", "ipython": "7.34.0"}
    assert cc.parse_freeze("") == {}
    assert cc.parse_freeze("# only a comment\n\n   \n") == {}


def _full_freeze(**override: str) -> str:
    """A freeze with a version for every package the constraints need (``override`` changes some)."""
    versions = {p: f"1.{i}.0" for i, p in enumerate(cc.COLAB_PACKAGES)}
    versions.update({"torch": "2.11.0+cu128", "torchvision": "0.26.0+cu128", **override})
    return "".join(f"{name.replace('-', '_')}=={v}\n" for name, v in versions.items() if v) + "wheel==0.47.0\n"


def test_constraints_text_pins_exactly_our_packages_marks_torch_and_says_when_and_how_to_refresh(tmp_path):
    text = cc.constraints_text(_full_freeze(numpy="2.0.2"), read_on=date(2026, 12, 6))
    assert "on 2026-12-06" in text and "--refresh-constraints pip-freeze.gpu.txt" in text
    assert cc.FREEZE_SOURCE in text
    assert "numpy==2.0.2\n" in text and "wheel" not in text
    assert text.endswith("torch==2.11.0  # torch\ntorchvision==0.26.0  # torch\n")
    path = tmp_path / "c.txt"
    path.write_text(text)
    packages, torch = cc.read_constraints(path)
    assert list(packages) == [cc._norm(p) for p in cc.COLAB_PACKAGES]
    assert torch == {"torch": "2.11.0", "torchvision": "0.26.0"}


def test_constraints_text_refuses_a_freeze_that_lacks_a_package():
    with pytest.raises(ValueError, match="ipywidgets"):
        cc.constraints_text(_full_freeze(ipywidgets=""))
    with pytest.raises(ValueError, match="torch"):
        cc.constraints_text(_full_freeze(torch="", torchvision=""))


def test_the_committed_constraints_are_what_the_generator_writes_from_colabs_versions():
    text = cc.CONSTRAINTS.read_text()
    packages, torch = cc.read_constraints()
    freeze = "".join(f"{n}=={v}\n" for n, v in {**packages, **torch}.items())
    read_on = date.fromisoformat(text.split("\n# on ", 1)[1][:10])
    assert cc.constraints_text(freeze, read_on) == text
    # the versions the course's Colab issue names (read from Colab's freeze on the same day)
    assert packages["ipython"] == "7.34.0" and packages["ipywidgets"] == "7.7.1"
    assert packages["ipykernel"] == "6.17.1" and packages["traitlets"] == "5.7.1"
    assert torch == {"torch": "2.11.0", "torchvision": "0.26.0"}
    assert "segmentation-models-pytorch" not in packages  # Colab lacks it: the setup cell installs it


@pytest.mark.parametrize("text, message", [
    ("numpy>=2\ntorch==2.11.0  # torch\ntorchvision==0.26.0  # torch\n", "line 1: expected 'name==version'"),
    ("numpy==\ntorch==2.11.0  # torch\ntorchvision==0.26.0  # torch\n", "line 1"),
    ("numpy==2.0.2\ntorch==2.11.0\ntorchvision==0.26.0\n", "marked '# torch'"),
    ("numpy==2.0.2\ntorch==2.11.0  # torch\n", "marked '# torch'"),
    ("# only the header\n", "does not look like"),
])
def test_read_constraints_rejects_a_file_that_is_not_the_constraints(tmp_path, text, message):
    path = tmp_path / "c.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        cc.read_constraints(path)


def test_with_our_torch_colabs_setuptools_pin_is_left_out_and_said_so():
    packages = {"numpy": "2.0.2", "setuptools": "75.2.0"}
    ours = {"torch": "2.14.1", "torchvision": "0.29.1"}
    pins, dropped = cc.replica_pins(packages, ours, colab_torch=False)
    assert pins == ["numpy==2.0.2", "torch==2.14.1", "torchvision==0.29.1"]
    assert dropped == ["setuptools==75.2.0"]
    pins, dropped = cc.replica_pins(packages, {"torch": "2.11.0", "torchvision": "0.26.0"}, colab_torch=True)
    assert "setuptools==75.2.0" in pins and "torch==2.11.0" in pins and dropped == []


def test_build_venv_refuses_an_unknown_torch_choice_before_building(tmp_path):
    with pytest.raises(ValueError, match="'ours' or 'colab'"):
        cc.build_venv(tmp_path / "venv", torch="latest")
    assert not (tmp_path / "venv").exists()


def test_the_stand_in_is_in_sys_modules_when_python_starts_as_on_colab(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    pth = cc.write_stand_in(site)
    assert pth.read_text() == "import google.colab\n"
    assert not (site / "google" / "__init__.py").exists()  # a namespace: real google.* packages still import
    code = ("import site, sys; assert 'google.colab' not in sys.modules; site.addsitedir(sys.argv[1]); "
            "import google.colab; print('google.colab' in sys.modules, google.colab.REPLICA)")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(site)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


def test_the_stand_in_refuses_a_folder_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="site-packages"):
        cc.write_stand_in(tmp_path / "nowhere")


def _git(*args, cwd=None, env=None):
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_the_git_config_clones_githubs_address_from_the_local_release_with_no_network(tmp_path):
    release = tmp_path / "release"
    (release / "notebooks").mkdir(parents=True)
    (release / "notebooks" / "00.ipynb").write_text("{}")
    assert _git("init", "-q", "-b", "main", str(release)).returncode == 0
    ident = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
    assert _git(*ident, "-C", str(release), "add", "-A").returncode == 0
    assert _git(*ident, "-C", str(release), "commit", "-q", "-m", "r").returncode == 0
    config = cc.git_config(tmp_path / "gitconfig", release)
    env = cc.kernel_env(config, tmp_path / "venv", base={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    # the address is rewritten before anything is fetched (so a broken config never reaches the network)
    url = _git("ls-remote", "--get-url", f"https://github.com/{GITHUB_REPO}", env=env).stdout.strip()
    assert url == f"file://{release.resolve()}"
    # exactly the setup cell's command
    out = _git("clone", "-q", "--depth", "1", f"https://github.com/{GITHUB_REPO}", str(tmp_path / REPO_NAME), env=env)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / REPO_NAME / "notebooks" / "00.ipynb").exists()
    # only that repository is rewritten: another GitHub address is left alone
    other = _git("config", "--get-urlmatch", "url.insteadof", "https://github.com/someone/else", env=env)
    assert other.stdout.strip() == ""


def test_the_git_config_refuses_what_is_not_a_release_repository_or_a_repo_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a git repository"):
        cc.git_config(tmp_path / "gitconfig", tmp_path)
    with pytest.raises(ValueError, match="OWNER/NAME"):
        cc.git_config(tmp_path / "gitconfig", tmp_path, repo="https://github.com/a/b")


def test_the_kernel_env_is_fast_offline_without_the_course_on_its_paths(tmp_path):
    course_bin = str(cc.ROOT / ".venv" / "bin")
    base = {"PATH": os.pathsep.join([course_bin, str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin"]),
            "PYTHONPATH": str(cc.ROOT), "VIRTUAL_ENV": str(cc.ROOT / ".venv"), "COURSE_DATA": "/data",
            "MPLBACKEND": "Agg", "PIP_FIND_LINKS": "/opt/wheels", "HOME": "/root"}
    env = cc.kernel_env(tmp_path / "gitconfig", tmp_path / "venv", base=base)
    assert env["PATH"].split(os.pathsep) == [str(tmp_path / "venv" / "bin"), "/usr/local/bin", "/usr/bin"]
    for gone in ("PYTHONPATH", "VIRTUAL_ENV", "COURSE_DATA", "MPLBACKEND"):
        assert gone not in env
    assert env["PIP_FIND_LINKS"] == "/opt/wheels" and env["HOME"] == "/root"  # pip's sources stay
    assert env["GIT_CONFIG_GLOBAL"] == str(tmp_path / "gitconfig") and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert {k: env[k] for k in cc.ENV} == cc.ENV
    assert env["COURSE_FAST"] == env["COURSE_OFFLINE"] == env["HF_HUB_OFFLINE"] == "1"
    assert base["PYTHONPATH"] == str(cc.ROOT)  # the caller's dictionary is left alone


def test_notebooks_of_runs_the_release_in_order_then_the_student_version_then_the_solution(tmp_path):
    for name in ("notebooks/01_b.ipynb", "notebooks/00_a.ipynb", "notebooks/04b_c.ipynb", "notebooks/README.md",
                 "notebooks/student/11_x.ipynb", "source/11_x.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = cc.notebooks_of(tmp_path, source=tmp_path / "source" / "11_x.ipynb")
    assert [(p.relative_to(tmp_path).as_posix(), s) for p, s in found] == [
        ("notebooks/00_a.ipynb", False), ("notebooks/01_b.ipynb", False), ("notebooks/04b_c.ipynb", False),
        ("notebooks/student/11_x.ipynb", True), ("source/11_x.ipynb", False)]
    assert cc.notebooks_of(tmp_path, source=tmp_path / "missing.ipynb")[-1][1] is True


def test_check_content_explains_a_folder_it_cannot_use(tmp_path):
    assert cc.check_content(tmp_path / "content") == ""
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert "needs to write to" in cc.check_content(blocked) and "root" in cc.check_content(blocked)
    (tmp_path / "content" / REPO_NAME).mkdir()
    assert "is not a clone" in cc.check_content(tmp_path / "content")


def test_output_text_joins_streams_errors_and_results_and_the_pattern_sees_an_install():
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Cloning into '/content/x'...\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
                    nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[])]
    text = cc.output_text(cell)
    assert text == "Cloning into '/content/x'...\n42\nValueError: bad\n"
    assert cc.SETUP_OUTPUT.search(text)
    assert cc.SETUP_OUTPUT.search("Successfully installed course-utils-0.2.0")
    setup_report = ("Python 3.11.7 | torch 2.14.1, segmentation-models-pytorch not installed\n"
                    "mode: FAST (few images and epochs) | OFFLINE (no downloads) | running on Google Colab\n")
    assert not cc.SETUP_OUTPUT.search(setup_report)


def test_warnings_of_lists_each_distinct_warning_a_notebook_printed_once():
    nb = nbformat.v4.new_notebook()
    a, b = nbformat.v4.new_code_cell("a"), nbformat.v4.new_code_cell("b")
    warning = "/x/y.py:3: DeprecationWarning: Jupyter is migrating its paths\n  import z\n"
    a.outputs = [nbformat.v4.new_output("stream", name="stderr", text=warning)]
    b.outputs = [nbformat.v4.new_output("stream", name="stderr", text=warning + "UserWarning: size\n"),
                 nbformat.v4.new_output("stream", name="stdout", text="no warning here; WARNING: pip's note\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("DeprecationWarning: in prose"), a, b]
    assert cc.warnings_of(nb) == ["DeprecationWarning: Jupyter is migrating its paths", "UserWarning: size"]
    assert cc.warnings_of(nbformat.v4.new_notebook()) == []


def test_a_relative_venv_is_made_absolute_for_the_kernel_which_starts_in_content(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = cc.kernel_env(tmp_path / "gitconfig", Path("build/venv"), base={"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep) == [str(tmp_path / "build" / "venv" / "bin"), "/usr/bin"]


def test_build_venv_never_deletes_a_folder_it_did_not_make(tmp_path):
    other = tmp_path / "someone-elses-venv"
    other.mkdir()
    (other / "pyvenv.cfg").write_text("home = /usr/bin\n")
    with pytest.raises(FileExistsError, match="not a replica made by colab-check"):
        cc.build_venv(other)
    assert (other / "pyvenv.cfg").exists()


# ---------------------------------------------------------------- the record a release needs

def _replica_root(tmp_path: Path) -> tuple[Path, list[str]]:
    files = ["notebooks/01_x.ipynb", "course_utils/core.py", "course_utils/authoring/grading.py", "README.md",
             "tests/test_x.py", "requirements.txt", "course_utils/authoring/colab_check.py",
             "course_utils/authoring/colab_constraints.txt"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"contents of {rel}\n")
    return tmp_path, files


def test_the_digest_follows_the_notebooks_the_package_and_the_pins_but_not_the_grader_or_the_readme(tmp_path):
    root, files = _replica_root(tmp_path)
    first = cc.inputs_digest(root, files)
    assert cc.inputs_digest(root, files) == first
    for rel in ("README.md", "tests/test_x.py", "course_utils/authoring/grading.py"):
        (root / rel).write_text("edited\n")
        assert cc.inputs_digest(root, files) == first, rel
    for rel in ("notebooks/01_x.ipynb", "course_utils/core.py", "requirements.txt",
                "course_utils/authoring/colab_constraints.txt"):
        (root / rel).write_text("edited\n")
        changed = cc.inputs_digest(root, files)
        assert changed != first, rel
        first = changed


def test_a_release_needs_a_passing_full_replica_of_these_very_inputs(tmp_path):
    stamp = tmp_path / "build" / "colab-check-colab.json"
    assert "make colab-check TORCH=colab" in cc.stamp_problem(stamp, "colab", "d1")   # never ran
    runs = [cc.Run("00_start_here.ipynb", 3.2), cc.Run("01_image_formation.ipynb", 5.0)]
    with pytest.raises(ValueError):   # a failed run is never recorded
        cc.write_stamp(stamp, "colab", runs + [cc.Run("02_x.ipynb", 1.0, error="cell 3: boom")], 9.0, {}, "d1")
    assert not stamp.exists()
    cc.write_stamp(stamp, "colab", runs, 9.0, {"ipython": "7.34.0"}, "d1")
    assert cc.stamp_problem(stamp, "colab", "d1") == ""
    assert "changed since the Colab replica passed" in cc.stamp_problem(stamp, "colab", "d2")
    assert "not 'ours'" in cc.stamp_problem(stamp, "ours", "d1")
    stamp.write_text("{not json")
    assert "is not a Colab replica's record" in cc.stamp_problem(stamp, "colab", "d1")


def test_verify_answers_from_the_record_and_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cc, "STAMP", tmp_path / "colab-check-{torch}.json")
    monkeypatch.setattr(cc, "inputs_digest", lambda: "d1")
    monkeypatch.setattr(cc, "build_venv", lambda *a, **k: pytest.fail("--verify must not build anything"))
    assert cc.main(["--verify", "--torch", "colab"]) == 1
    assert "make colab-check TORCH=colab" in capsys.readouterr().err
    cc.write_stamp(tmp_path / "colab-check-colab.json", "colab", [cc.Run("00_start_here.ipynb", 3.0)], 3.0, {}, "d1")
    assert cc.main(["--verify", "--torch", "colab"]) == 0
    assert cc.main(["--verify", "--torch", "ours"]) == 1   # a record of the other torch does not count


def test_make_release_asks_for_the_record_first_and_writes_nothing_without_it(tmp_path):
    root = Path(__file__).resolve().parents[1]
    make = ["make", "-o", ".venv/.installed", "release", f"DEST={tmp_path / 'release'}"]
    plan = subprocess.run(make[:1] + ["-n"] + make[1:], cwd=root, capture_output=True, text=True, check=True).stdout
    assert -1 < plan.find("colab_check --verify --torch colab") < plan.find("authoring.release"), plan
    if (root / "build" / "colab-check-colab.json").exists():
        pytest.skip("this checkout holds a replica's record (a fresh clone, as in CI, has none)")
    done = subprocess.run(make, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "make colab-check TORCH=colab" in done.stderr, done.stdout + done.stderr
    assert not (tmp_path / "release").exists()


def test_only_can_pick_the_student_version_without_the_solution(tmp_path):
    release = tmp_path / "release"
    (release / "notebooks" / "student").mkdir(parents=True)
    for rel in ("notebooks/00_start_here.ipynb", "notebooks/student/11_exercise_unet_voc64.ipynb"):
        (release / rel).write_text("{}")
    source = tmp_path / "11_exercise_unet_voc64.ipynb"
    source.write_text("{}")
    labels = [cc.run_label(p, s) for p, s in cc.notebooks_of(release, source)]
    assert labels == ["00_start_here.ipynb", "student/11_exercise_unet_voc64.ipynb", "11_exercise_unet_voc64.ipynb"]
    assert [x for x in labels if "student/" in x] == ["student/11_exercise_unet_voc64.ipynb"]
    assert len([x for x in labels if "11_" in x]) == 2


def test_a_notebook_whose_cell_got_no_reply_runs_once_more_and_says_so():
    def runs(*results):
        calls = []
        def run():
            calls.append(1)
            return results[len(calls) - 1]
        return run, calls
    lost = cc.Run("01_x.ipynb", 120.0, error="CellTimeoutError: cell 12", timed_out=True)
    run, calls = runs(lost, cc.Run("01_x.ipynb", 9.0))
    result = cc.once_more_if_no_reply(run, 120)
    assert result.ok and len(calls) == 2 and "no reply within 120 s" in result.notes[0]
    run, calls = runs(lost, cc.Run("01_x.ipynb", 120.0, error="CellTimeoutError: cell 12", timed_out=True))
    result = cc.once_more_if_no_reply(run, 120)
    assert not result.ok and len(calls) == 2 and "first run" in result.error      # twice: a failure
    run, calls = runs(cc.Run("01_x.ipynb", 3.0, error="cell 4: NameError: x"), None)
    assert cc.once_more_if_no_reply(run, 120).error == "cell 4: NameError: x" and len(calls) == 1   # not retried
    run, calls = runs(cc.Run("01_x.ipynb", 3.0), None)
    assert cc.once_more_if_no_reply(run, 120).ok and len(calls) == 1


def test_in_slices_reads_a_message_that_a_long_poll_would_have_left_unread():
    import asyncio
    import time as _time
    from queue import Empty

    arrived = _time.monotonic() + 0.25          # the message is there after 0.25 s ...
    polls = []

    async def get_msg(timeout=None):            # ... but a poll only sees it when it starts after that
        polls.append(timeout)
        if _time.monotonic() >= arrived:
            return {"msg": "reply"}
        await asyncio.sleep(timeout)             # a missed wake-up: the whole timeout passes
        raise Empty

    start = _time.monotonic()
    assert asyncio.run(cc.in_slices(get_msg, step=0.1)(timeout=30)) == {"msg": "reply"}
    assert _time.monotonic() - start < 1 and max(polls) <= 0.1        # read within a slice, not after 30 s
    polls.clear()
    arrived = float("inf")
    start = _time.monotonic()
    with pytest.raises(Empty):                   # nothing comes: Empty at the caller's timeout, as before
        asyncio.run(cc.in_slices(get_msg, step=0.1)(timeout=0.35))
    assert 0.3 <= _time.monotonic() - start < 1


def test_in_slices_passes_a_plain_reply_through():
    import asyncio

    assert asyncio.run(cc.in_slices(lambda timeout=None: {"msg": "at once"})(timeout=None)) == {"msg": "at once"}
