"""Every notebook follows the course conventions (see README: "Notebook conventions")."""
import os
import sys
import types
from pathlib import Path

import nbformat
import pytest

from course_utils.authoring import conventions as nbtool
from course_utils.authoring import prose_numbers

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = nbtool.notebook_paths(ROOT)


def test_notebook_paths_lists_the_course_in_order_with_the_student_version(tmp_path):
    for rel in ("notebooks/01_b.ipynb", "notebooks/00_a.ipynb", "notebooks/student/11_x.ipynb",
                "notebooks/.ipynb_checkpoints/00_a-checkpoint.ipynb", "notebooks/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    found = [p.relative_to(tmp_path).as_posix() for p in nbtool.notebook_paths(tmp_path)]
    assert found == ["notebooks/00_a.ipynb", "notebooks/01_b.ipynb", "notebooks/student/11_x.ipynb"]
    course = [p.name[:2] for p in NOTEBOOKS if p.parent.name == "notebooks"]
    assert course == sorted(course) and course[0] == "00"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_notebook_follows_conventions(path):
    assert nbtool.problems(path, ROOT) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_badge_and_setup_cell_are_current(path):
    nb = nbformat.read(path, as_version=4)
    assert not nbtool.refresh(nb, nbtool.relpath_of(path, ROOT)), "run `python -m course_utils.authoring.conventions`"


# ---- the checker itself, on temporary notebooks --------------------------------------------

def _good_notebook(rel: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# A title\n\n{nbtool.badge(rel)}\n\n## Learning goals\n- one"),
        nbformat.v4.new_code_cell(nbtool.SETUP_SOURCE, execution_count=1),
        nbformat.v4.new_markdown_cell("## Try it\nChange a number.\n\n## Summary\nDone."),
    ]
    return nb


def _write(tmp_path, nb, rel="notebooks/99_tmp.ipynb"):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_checker_accepts_a_good_notebook(tmp_path):
    path = _write(tmp_path, _good_notebook("notebooks/99_tmp.ipynb"))
    assert nbtool.problems(path, tmp_path) == []


def test_checker_rejects_a_notebook_without_badge(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    nb.cells[0].source = "# A title\n\n## Learning goals\n- one"
    problems = nbtool.problems(_write(tmp_path, nb), tmp_path)
    assert any("badge" in p for p in problems)


def test_checker_rejects_a_badge_that_points_elsewhere(tmp_path):
    nb = _good_notebook("notebooks/01_other.ipynb")
    problems = nbtool.problems(_write(tmp_path, nb), tmp_path)
    assert any("badge" in p for p in problems)


def test_checker_rejects_errors_paths_unexecuted_cells_and_missing_setup(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    nb.cells[1].source = "import course_utils"
    bad = nbformat.v4.new_code_cell("1/0", execution_count=2)
    bad.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    nb.cells.append(bad)
    nb.cells.append(nbformat.v4.new_code_cell("open('/home/alice/data.csv')"))
    nb.cells.append(nbformat.v4.new_code_cell("print(1)", execution_count=None))
    problems = "\n".join(nbtool.problems(_write(tmp_path, nb), tmp_path))
    for expected in ("setup cell", "error output", "absolute machine path", "never executed"):
        assert expected in problems


def test_checker_rejects_big_and_invalid_notebooks(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    nb.cells.append(nbformat.v4.new_markdown_cell("x" * 3_100_000))
    assert any("3 MB" in p for p in nbtool.problems(_write(tmp_path, nb), tmp_path))
    broken = tmp_path / "notebooks" / "98_broken.ipynb"
    broken.write_text("{not json")
    assert any("not a valid notebook" in p for p in nbtool.problems(broken, tmp_path))


def test_checker_wants_goals_try_it_and_summary(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    nb.cells[2].source = "Nothing here."
    problems = "\n".join(nbtool.problems(_write(tmp_path, nb), tmp_path))
    assert "Try it" in problems and "Summary" in problems


def test_refresh_adds_badge_and_setup_and_is_idempotent(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\nText"), nbformat.v4.new_code_cell("x = 1")]
    assert nbtool.refresh(nb, "notebooks/05_x.ipynb")
    assert nbtool.badge("notebooks/05_x.ipynb") in nb.cells[0].source
    assert nb.cells[1].source == nbtool.SETUP_SOURCE and nb.cells[2].source == "x = 1"
    assert not nbtool.refresh(nb, "notebooks/05_x.ipynb")
    assert nbtool.refresh(nb, "notebooks/06_moved.ipynb")  # a renamed notebook gets a new badge
    assert nb.cells[0].source.count("colab-badge.svg") == 1


def test_refresh_needs_a_title_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(ValueError, match="markdown"):
        nbtool.refresh(nb, "notebooks/x.ipynb")


class _FakeShell:
    """Stands in for IPython in the setup cell: records shell commands and line magics instead of running them."""

    def __init__(self):
        self.calls = []

    def system(self, command):
        self.calls.append(("!", command))

    def run_line_magic(self, name, line, *args):
        self.calls.append(("%" + name, line))


def _run_setup_cell(monkeypatch, colab: bool, cloned: bool) -> list:
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(nbtool.SETUP_SOURCE)  # `!git` and `%pip` become calls
    shell = _FakeShell()
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: cloned if str(p).startswith("/content/") else real_isdir(p))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the cell may add the clone to sys.path
    namespace = {"get_ipython": lambda: shell}
    exec(compile(code, "setup-cell", "exec"), namespace)
    assert str(namespace["DEVICE"]) in ("cpu", "cuda", "mps")  # it ran to its end and chose a device
    return shell.calls


def test_setup_cell_installs_only_on_colab_only_once_and_never_torch(monkeypatch, capsys):
    assert _run_setup_cell(monkeypatch, colab=False, cloned=False) == []
    calls = _run_setup_cell(monkeypatch, colab=True, cloned=False)
    assert [kind for kind, _ in calls] == ["!", "%pip"]
    assert "git clone" in calls[0][1] and nbtool.GITHUB_REPO in calls[0][1] and "install" in calls[1][1]
    assert not any("torch" in line for _, line in calls)  # Colab's own CUDA build of torch stays
    assert _run_setup_cell(monkeypatch, colab=True, cloned=True) == []  # a second run does nothing
    assert "mode:" in capsys.readouterr().out


# ---- prose numbers: a measured figure in the text must be one the notebook shows ----------------

def _numbers(text):
    return [n.text for n in prose_numbers.prose_numbers(text)]


def test_prose_numbers_finds_measurements_and_skips_structure():
    text = ("The probe reaches 43.8 % and fine-tuning 0.872, 27× more parameters, 5 dB, 236 img/s on 1,456 images. "
            "A 3x3 kernel on 64x64 inputs, 2 layers, ResNet-152, conv1, `0.999` in code, $0.5^{18}$, in 2015.")
    assert _numbers(text) == ["43.8 %", "0.872", "27×", "5 dB", "236 img/s", "1,456"]


def test_prose_numbers_skips_sentences_that_cite_a_source():
    assert _numbers("He et al. report 3.57 % top-5 error.") == []
    assert _numbers("The [paper](https://arxiv.org/abs/1512.03385) reports 3.57 %.") == []
    assert _numbers("The lecture says 0.0000038. We measure 0.25.") == ["0.25"]


def test_comments_are_prose_but_shapes_and_counts_there_are_annotations():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = f()   # (1, 4, 71, 60), 400 pixels\ny = 2  # reaches about 0.58")]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="val mIoU 0.705\n")]
    assert [(i, n.text) for i, n in prose_numbers.stale_numbers(nb)] == [(0, "0.58")]


def test_a_figures_alt_text_may_quote_only_numbers_the_notebook_prints():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plt.plot(losses)")
    cell.outputs = [nbformat.v4.new_output("stream", text="loss: first 3.135, last 0.417\n")]
    cell.metadata["mystnb"] = {"image": {"alt": "The loss falls from about 3.1 to 0.42 in 60 steps."}}
    nb.cells = [cell]
    assert prose_numbers.stale_numbers(nb) == []          # 3.1 and 0.42 are printed (rounded); 60 is structure
    cell.metadata["mystnb"]["image"]["alt"] = "The loss falls from about 3.1 to 0.38 in 60 steps."
    assert [(i, n.text) for i, n in prose_numbers.stale_numbers(nb)] == [(0, "0.38")]   # read off an old plot


def test_rounding_and_percentages_match_what_is_printed():
    shown = [0.70496, 0.849, 27.4]
    assert prose_numbers.matches(prose_numbers.prose_numbers("about 0.705 now")[0], shown)
    assert prose_numbers.matches(prose_numbers.prose_numbers("it is 84.9 % here")[0], shown)
    assert prose_numbers.matches(prose_numbers.prose_numbers("a 27× gap")[0], shown)
    assert not prose_numbers.matches(prose_numbers.prose_numbers("about 0.58 now")[0], shown)
    assert not prose_numbers.matches(prose_numbers.prose_numbers("it is 84.8 % here")[0], shown)


def _copy_of(name, tmp_path):
    dest = tmp_path / "notebooks" / name
    dest.parent.mkdir(parents=True)
    dest.write_bytes((ROOT / "notebooks" / name).read_bytes())
    return dest


def test_a_stale_number_planted_in_a_real_notebook_is_flagged(tmp_path):
    name = "10_segmentation_metrics.ipynb"
    path = _copy_of(name, tmp_path)
    assert not [p for p in nbtool.problems(path, tmp_path) if "no output or code" in p]
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and i > 2)
    nb.cells[index].source += "\n\nOn this data the mean IoU comes out at 0.6172."
    nbformat.write(nb, path)
    found = [p for p in nbtool.problems(path, tmp_path) if "no output or code" in p]
    assert len(found) == 1 and f"cell {index}" in found[0] and "0.6172" in found[0]


def test_a_checked_cell_with_a_figure_is_flagged(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    cell = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nplt.plot([1, 2])", execution_count=2)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    nb.cells.append(cell)
    problems = nbtool.problems(_write(tmp_path, nb), tmp_path)
    assert any("prints text only" in p and "cell 3" in p for p in problems)
    cell.outputs = [nbformat.v4.new_output("stream", text="shape (1, 2)\n")]
    assert nbtool.problems(_write(tmp_path, nb), tmp_path) == []


# ---- cross-notebook claims: a result of another notebook is not quoted from memory --------------

def test_a_claim_about_another_notebooks_result_is_flagged(tmp_path):
    nb = _good_notebook("notebooks/13_tmp.ipynb")
    printed = nbformat.v4.new_code_cell("print(erf)", execution_count=2)
    printed.outputs = [nbformat.v4.new_output("stream", text="erf r50 7.25\n")]
    nb.cells.append(printed)
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "Notebook 12 found Segformer's output ERF wider than DeepLabV3+'s. "
        "Notebook 11 reaches a val mIoU of 0.453. "
        "Here the r50 is 7.25 px, as in notebook 12's figure. "
        "Notebook 13 (this one) finds it wider. Notebook 08 explains the receptive field."))
    found = [p for p in nbtool.problems(_write(tmp_path, nb, "notebooks/13_tmp.ipynb"), tmp_path)
             if "another notebook" in p]
    assert len(found) == 2 and all("cell 4" in p for p in found)
    assert "'wider'" in found[0] and "Notebook 12 found" in found[0]
    assert "'0.453'" in found[1]
    assert prose_numbers.cross_notebook_claims(nb, "13")[0][0] == 4
    nb.cells[4].source = "Notebook 12 compares the models' output ERFs; look at its last figure."
    assert nbtool.problems(_write(tmp_path, nb, "notebooks/13_tmp.ipynb"), tmp_path) == []


def test_a_lettered_notebook_may_quote_itself_but_not_its_neighbour(tmp_path):
    nb = _good_notebook("notebooks/04b_tmp.ipynb")
    nb.cells.append(nbformat.v4.new_markdown_cell("Notebook 04b (this one) finds it faster."))
    assert nbtool.problems(_write(tmp_path, nb, "notebooks/04b_tmp.ipynb"), tmp_path) == []
    nb.cells[-1].source = "Notebook 04 finds it faster."
    found = nbtool.problems(_write(tmp_path, nb, "notebooks/04b_tmp.ipynb"), tmp_path)
    assert len(found) == 1 and "'faster'" in found[0]
