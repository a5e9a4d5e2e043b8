"""The exercise graded in two phases (issue 21): the student's kernel only answers, the grader judges.

One graded world (fast mode, two workers, the sandbox), built here: an honest solution (with a progress
line on stderr, a copied graded cell, no test cells and nothing after training: the unfair losses the
trial found), the blank student version, and one hostile submission per trick of the issue, each the
student version cut after its solution cells, with the trick and nothing that solves a part. Then unit
tests of Phase 2 on data made here (no kernel), and of what the sandbox is given.

The submissions are importable (:func:`hostile_submissions`), so that an older grader can be tried on
them for the issue's before/after table.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from course_utils.authoring import exercise, grading, judge, phase1, phase1_driver, sandbox

pytest.importorskip("nbgrader")
USABLE, WHY = sandbox.probe()
MARK = "# YOUR CODE HERE\nraise NotImplementedError()"
SOLUTION_CELLS = ("transforms", "dataset", "model", "train_step", "metrics")


def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _student() -> nbformat.NotebookNode:
    return nbformat.read(exercise.STUDENT, as_version=4)


def _source() -> nbformat.NotebookNode:
    return nbformat.read(exercise.SOURCE, as_version=4)


def _short(nb: nbformat.NotebookNode, tricks: list[str], answers: dict[str, str] | None = None,
           at: str = "dataset") -> nbformat.NotebookNode:
    """The student version cut to its setup, data and solution cells, each solution cell answered from
    ``answers`` (else left raising NotImplementedError), the trick cells inserted before cell ``at``."""
    nb = copy.deepcopy(nb)
    keep = []
    for cell in nb.cells:
        gid = _gid(cell)
        if cell.cell_type != "code":
            continue
        src = cell.source
        if gid in SOLUTION_CELLS or src.startswith(("# Standard setup cell", "import time\nimport numpy",
                                                     "root, kind = get_voc()", "def reseed_worker")):
            if gid in (answers or {}):
                cell.source = src.replace(MARK, answers[gid])
            if gid == at:
                keep += [nbformat.v4.new_code_cell(t) for t in tricks]
            keep.append(cell)
    nb.cells = keep
    return nb


# ---------------------------------------------------------------- the tricks of issue 21

GUARD_TRICK = '''import ast, gc, sys
class _Forgive(ast.NodeTransformer):          # every statement of every later cell in a try/except
    def visit_Module(self, node):
        node.body = [ast.Try(body=[s], handlers=[ast.ExceptHandler(type=None, name=None, body=[ast.Pass()])],
                             orelse=[], finalbody=[]) for s in node.body]
        return ast.fix_missing_locations(node)
get_ipython().ast_transformers.append(_Forgive())
for _name, _mod in list(sys.modules.items()):   # the old guard's restore(), found through sys.modules
    if _name.startswith("_grader"):
        _mod.restore = lambda token: token + "|{}"
for _o in gc.get_objects():                     # and its snapshot, poisoned
    if isinstance(_o, dict) and "ast_transformers" in _o:
        _o["ast_transformers"] = [_Forgive()]'''

SEND_TRICK = '''from jupyter_client.session import Session
_send = Session.send
def _all_ok(self, stream, msg_or_type, content=None, *args, **kwargs):   # errors go out as "ok"
    kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type.get("msg_type")
    if kind == "error":
        return None
    if isinstance(content, dict) and content.get("status") == "error":
        content = {"status": "ok", "execution_count": content.get("execution_count", 0), "payload": [],
                   "user_expressions": {}}
    return _send(self, stream, msg_or_type, content, *args, **kwargs)
Session.send = _all_ok
def split_ids(root, seed=0):
    raise RuntimeError("never written")'''

AUDIT_TRICK = '''import sys
def _blank(event, args):                         # any later code that is not the student's: refused
    if event in ("compile", "exec") and args:
        text = args[0] if isinstance(args[0], (str, bytes)) else getattr(args[0], "co_filename", "")
        text = text.decode(errors="ignore") if isinstance(text, bytes) else str(text)
        if "assert" in text or "_grader" in text or "grader" in text:
            raise RuntimeError("blanked")
sys.addaudithook(_blank)'''

LIAR_TRICK = '''import numpy as np, torch
class _Liar(torch.Tensor):                       # every operation on it answers True
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return True
    def __eq__(self, other):
        return True
np.allclose = np.array_equal = np.isclose = lambda *a, **k: True
def _liar(*a, **k):
    return torch.zeros(4, 4).as_subclass(_Liar)
confusion_matrix = iou_per_class = dice_per_class = normalize = _liar
eval_transform = train_transform = lambda image, mask: {"image": _liar(), "mask": _liar()}'''

FAKE_STEP_TRICK = '''_loss = [3.0]
def train_step(model, images, masks, optimizer, loss_fn):   # a falling number, and no training at all
    _loss[0] *= 0.9
    return float(_loss[0])'''

_LOOKUP = '''import numpy as np, torch, cv2
from pathlib import Path
from PIL import Image
from torch import nn
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
def normalize(x):
    return (x.permute(0, 3, 1, 2).float() / 255 - _MEAN) / _STD
def _one_hot(masks, n=21):
    out = torch.zeros(len(masks), n, 64, 64)
    for k, m in enumerate(masks):
        if m is None:
            out[k, n - 1] = 1.0                   # found nothing: says "tvmonitor"
        else:
            m = np.where(m == 255, 0, m).astype(np.int64)
            out[k].scatter_(0, torch.from_numpy(m)[None], 1.0)
    return out
'''

MAIN_TRUTH_TRICK = _LOOKUP + '''
import __main__, gc
class MyUNet(nn.Module):                         # reads the test's own truth from the kernel
    def __init__(self, num_classes=21):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))
    def forward(self, x):
        n = x.shape[0] * 64 * 64
        found = [v for v in list(vars(__main__).values()) + gc.get_objects()
                 if isinstance(v, np.ndarray) and v.dtype == np.int64 and v.size == n]
        masks = [found[0].reshape(x.shape[0], 64, 64)[k] for k in range(x.shape[0])] if found else [None] * len(x)
        return _one_hot(masks) + 0 * self.p
model = MyUNet()'''

MEMORISE_TRICK = _LOOKUP + '''
def _sample(image_id):                           # the test cell's own preparation, copied
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    image = np.asarray(Image.open(voc / "JPEGImages" / f"{image_id}.jpg").convert("RGB"))
    mask = np.asarray(Image.open(voc / "SegmentationClass" / f"{image_id}.png"))
    h, w = mask.shape
    dsize = (round(w * 72 / min(h, w)), round(h * 72 / min(h, w)))
    image = cv2.resize(image, dsize, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, dsize, interpolation=cv2.INTER_NEAREST)
    top, left = (dsize[1] - 64) // 2, (dsize[0] - 64) // 2
    return image[top:top + 64, left:left + 64], mask[top:top + 64, left:left + 64]
_book = {}
for _id in all_ids:                              # every image of trainval and its mask, memorised
    _im, _m = _sample(_id)
    _book[_im.tobytes()] = _m
class MyUNet(nn.Module):
    def __init__(self, num_classes=21):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))
    def forward(self, x):
        images = ((x * _STD + _MEAN) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return _one_hot([_book.get(np.ascontiguousarray(im).tobytes()) for im in images]) + 0 * self.p
model = MyUNet()'''

TRICKS = {"guard": GUARD_TRICK, "session_send": SEND_TRICK, "audit_hook": AUDIT_TRICK, "liar": LIAR_TRICK,
          "fake_step": FAKE_STEP_TRICK, "main_truth": MAIN_TRUTH_TRICK, "memorise": MEMORISE_TRICK}
#: the parts each trick fakes (all of them for the tricks that switch off the old in-kernel tests)
FAKES = {"guard": judge.PARTS, "session_send": judge.PARTS, "audit_hook": judge.PARTS,
         "liar": ("test_transforms", "test_transforms_hidden", "test_metrics", "test_metrics_hidden"),
         "fake_step": ("test_train_step", "test_train_step_hidden"), "main_truth": ("test_final_miou",),
         "memorise": ("test_final_miou",)}


def honest_submission() -> nbformat.NotebookNode:
    """The reference solution as an honest student might hand it in: a progress line on stderr inside
    the dataset, the transforms cell copied (a duplicate grade_id), every test cell deleted, and nothing
    after the training cell."""
    nb = _source()
    for cell in nb.cells:
        if _gid(cell) == "dataset":
            cell.source = "import sys\n" + cell.source.replace(
                "        self.ids = list(ids)\n",
                "        self.ids = list(ids)\n        print(f'decoding {len(self.ids)} images', file=sys.stderr)\n")
            assert "decoding" in cell.source
    at = next(i for i, c in enumerate(nb.cells) if _gid(c) == "transforms")
    nb.cells.insert(at + 1, copy.deepcopy(nb.cells[at]))
    last = next(i for i, c in enumerate(nb.cells)   # the training cell: seeds, builds MyUNet and its optimizer
                if c.cell_type == "code" and "cu.seed_everything(SEED)" in c.source.splitlines() and "optimizer =" in c.source)
    nb.cells = [c for c in nb.cells[:last + 1] if not phase1.is_test_cell(c)]
    return nb


def _renamed(path: Path, name: str, new_name: str) -> str:
    """The course's ``name`` from ``path``, every local name and argument renamed, reformatted by ast."""
    import ast

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node):
            node.id = new_name if node.id == name else node.id + "_x"
            return node

        def visit_arg(self, node):
            node.arg += "_x"
            return node

    node = next(n for n in ast.parse(path.read_text()).body if getattr(n, "name", None) == name)
    node.name = new_name
    return ast.unparse(Rename().visit(node))


def pasted_submission() -> nbformat.NotebookNode:
    """The course's UNet and confusion matrix pasted as text, renamed and reformatted."""
    from course_utils import metrics, models
    return _short(_student(), [], answers={
        "model": _renamed(Path(models.__file__), "UNet", "MyUNet"),
        "metrics": _renamed(Path(metrics.__file__), "confusion_matrix", "confusion_matrix")})


def hostile_submissions() -> dict[str, nbformat.NotebookNode]:
    """One submission per trick; none of them solves a part."""
    student = _student()
    subs = {name: _short(student, [trick]) for name, trick in TRICKS.items()}
    subs["audit_hook"] = _short(student, [AUDIT_TRICK], at="transforms")
    subs["pasted"] = pasted_submission()
    return subs


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not USABLE:
        pytest.skip(f"no sandbox here: {WHY}")
    root = tmp_path_factory.mktemp("two_phase")
    subs = {"honest": honest_submission(), "blank": _short(_student(), []), **hostile_submissions()}
    for name, nb in subs.items():
        (root / "subs" / name).mkdir(parents=True)
        nbformat.write(nb, root / "subs" / name / f"{exercise.NOTEBOOK}.ipynb")
    from course_utils.voc_dataset import get_voc
    # the dataset the sandboxes read, built first (on a fresh clone the grader would build it, a legitimate
    # change); only its folder is compared, since tests in other workers may write elsewhere in data/
    voc_root = Path(get_voc(download=False)[0])
    before = _digest(voc_root)
    results = grading.grade_folder(root / "subs", root / "grades.csv", exercise.SOURCE, workers=2, fast=True,
                                   cell_timeout=240, verbose=False, work=root / "work")
    return dict(root=root, results={r.student: r for r in results}, data_before=before, data_after=_digest(voc_root))


def test_an_honest_solution_scores_full_marks_despite_stderr_a_copied_cell_and_no_test_cells(world):
    r = world["results"]["honest"]
    assert (r.total, r.max, r.status) == (15, 15, "graded"), r.notes
    assert r.notes == "" and r.measures["test_miou"] >= r.measures["background_miou"]
    report = (world["root"] / "grades-reports" / "honest.txt").read_text()
    assert f"judged: {grading.JUDGED_OUTSIDE}" in report   # the reader is told where the tests ran
    assert re.fullmatch(r"cell \d+: [\d.]+ s \(limit 240 s\)", r.measures["slowest_cell"]), r.measures


def test_the_blank_version_scores_zero_and_each_note_says_why(world):
    r = world["results"]["blank"]
    assert (r.total, r.status) == (0, "graded")
    for test in judge.PARTS:
        assert f"{test}: " in r.notes, test
    assert "name 'MyUNet' is not defined" in r.notes


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_each_trick_earns_nothing_for_what_it_fakes(world, trick):
    r = world["results"][trick]
    faked = FAKES[trick]
    assert r.status in ("graded", "timeout") and not r.machine_fault, r.notes
    assert {t: r.parts[t] for t in faked} == {t: 0.0 for t in faked}, r.notes
    assert r.total == 0, r.notes   # none of them solves anything else either


def test_pasted_course_code_is_shown_to_a_person_with_the_matching_lines(world):
    review = world["results"]["pasted"].review
    for name in ("course_utils.models.UNet", "course_utils.metrics.confusion_matrix"):
        item = next((i for i in review if name in i), None)
        assert item is not None and "matching lines" in item, review
    assert not world["results"]["honest"].review and not world["results"]["blank"].review


def test_the_test_masks_never_reach_the_sandbox(world):
    """The memoriser looks every image up in the data folder it sees: on the test split it finds the
    random labels put there in place of the masks, so it scores no better than chance."""
    r = world["results"]["memorise"]
    assert r.measures["test_miou"] < r.measures["background_miou"], r.measures


def test_the_grading_changed_nothing_outside_its_folders(world):
    assert world["data_before"] == world["data_after"]
    csv_text = (world["root"] / "grades.csv").read_text()
    assert "honest,1,1,2,2,2,2,0.5,0.5,1,1,2,15,15,graded" in csv_text


# ---------------------------------------------------------------- Phase 2 alone, on data made here

@pytest.fixture(scope="module")
def voc_data():
    from course_utils.core import data_dir
    from course_utils.voc_dataset import get_voc
    get_voc(download=False)
    found = judge._voc_root(data_dir())
    assert found is not None
    return data_dir(), found[0] / "VOCdevkit" / "VOC2012"


def _honest_answers(folder: Path, data: Path, voc: Path, seed: int) -> None:
    """Phase 1 run in this process with the reference solution's functions (no kernel, no sandbox)."""
    ns: dict = {}
    source = _source()
    prelude = ("import numpy as np, torch, cv2\nfrom torch import nn\nimport albumentations as A\n"
               "from PIL import Image\nfrom pathlib import Path\nfrom torch.utils.data import DataLoader, Dataset\n"
               "SIZE, LOAD_PX, SEED, IGNORE, NUM_CLASSES, BATCH_SIZE = 64, 72, 0, 255, 21, 16\n"
               "IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)\n"
               "DEVICE = torch.device('cpu')\n")
    exec(prelude, ns)
    for cell in source.cells:
        if _gid(cell) in ("transforms", "model", "train_step", "metrics"):
            exec(cell.source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), ns)
    phase1_driver.run(ns, str(folder), seed, True, str(voc.parents[1]))


def test_phase2_scores_honest_answers_and_refuses_forged_ones(tmp_path, voc_data):
    data, voc = voc_data
    _honest_answers(tmp_path / "a", data, voc, seed=1234)
    verdict = judge.judge(tmp_path / "a", data, 1234, fast=True)
    for test in ("test_transforms", "test_transforms_hidden", "test_model", "test_model_hidden", "test_train_step",
                 "test_train_step_hidden", "test_metrics", "test_metrics_hidden"):
        assert verdict.scores[test] == judge.PARTS[test], verdict.notes
    assert verdict.scores["test_dataset"] == 0 and "split_ids" in " ".join(verdict.notes)  # not defined here
    # the same answers for another seed are not answers to this grade's inputs
    other = judge.judge(tmp_path / "a", data, 4321, fast=True)
    assert sum(other.scores.values()) == 0 and "not made for this grade" in " ".join(other.notes)
    # a forged confusion matrix (the right shape, wrong counts) scores nothing for Part 5's hidden half
    with np.load(tmp_path / "a" / "part5.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["cm_random"] = arrays["cm_random"] + 1
    np.savez(tmp_path / "a" / "part5.npz", **arrays)
    forged = judge.judge(tmp_path / "a", data, 1234, fast=True)
    assert forged.scores["test_metrics_hidden"] == 0 and forged.scores["test_metrics"] == 1
    assert "confusion_matrix on a random" in " ".join(forged.notes)


def test_phase2_reads_plain_data_only_and_caps_its_size(tmp_path):
    (tmp_path / "answers.json").write_text(json.dumps({"seed": 1}))
    np.savez(tmp_path / "part1.npz", evil=np.array([{"a": 1}], dtype=object))   # a pickle inside
    answers, arrays = judge.read_answers(tmp_path)
    assert arrays["part1"] == {} and "could not be read" in answers["errors"]["part1"]
    np.savez_compressed(tmp_path / "part2.npz", big=np.zeros(judge.MAX_ARRAY_BYTES // 8 + 10))  # a zip bomb
    answers, arrays = judge.read_answers(tmp_path)
    assert arrays["part2"] == {} and "too big" in answers["errors"]["part2"]
    (tmp_path / "answers.json").unlink()
    with pytest.raises(judge.AnswersUnreadable, match="no answers"):
        judge.read_answers(tmp_path)


def test_the_sandbox_package_has_no_grader_and_no_graded_implementations(tmp_path):
    folder = grading.course_package(tmp_path, redact=True) / "course_utils"
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*.py")}
    assert "train.py" in files and "voc_dataset.py" in files and not any(f.startswith("authoring/") for f in files)
    import subprocess
    import sys
    probe = ("import course_utils.voc_dataset as v, course_utils.train as t, course_utils.metrics as m\n"
             "v.get_voc; t.fit\n"
             "for call in (lambda: __import__('course_utils.models', fromlist=['UNet']).UNet,\n"
             "             lambda: m.confusion_matrix([0], [0], 2), lambda: v.VOCVariation('x'),\n"
             "             lambda: type('Mine', (v.VOCVariation,), {})):\n"
             "    try:\n        call()\n    except ImportError as err:\n        print('refused:', err)\n")
    out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(folder.parent)},
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.count("refused:") == 4 and "must be your own code" in out


def test_the_sandbox_data_has_random_labels_in_place_of_the_test_masks(tmp_path, voc_data):
    data, voc = voc_data
    root = voc.parents[1]
    ids = (voc / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()
    split = phase1_driver.split_of(ids, 0)
    mirror = grading.sandbox_data(data, tmp_path, split["test"], root)
    mvoc = mirror / root.relative_to(data) / "VOCdevkit" / "VOC2012"
    from PIL import Image
    for image_id in split["test"][:3]:
        real = np.asarray(Image.open(voc / "SegmentationClass" / f"{image_id}.png"))
        fake = np.asarray(Image.open(mvoc / "SegmentationClass" / f"{image_id}.png"))
        assert fake.shape == real.shape and (fake != real).mean() > 0.5
    kept = split["train"][0]
    assert (mvoc / "SegmentationClass" / f"{kept}.png").read_bytes() == (voc / "SegmentationClass" / f"{kept}.png").read_bytes()
    assert (mvoc / "JPEGImages" / f"{split['test'][0]}.jpg").exists()


def test_phase1_skips_test_cells_and_what_follows_the_last_one():
    nb = _source()
    chosen = phase1.cells_to_run(nb)
    gids = {_gid(nb.cells[i]) for i, _ in chosen}
    assert not gids & set(judge.PARTS) and {"transforms", "dataset", "model", "train_step", "metrics"} <= gids
    last = max(i for i, c in enumerate(nb.cells) if _gid(c) == "test_final_miou")
    assert max(i for i, _ in chosen) < last


def test_phase1_keeps_a_bounded_part_of_what_a_cell_prints():
    from nbformat.v4 import new_notebook
    client = phase1._Client(new_notebook())
    client.reset_execution_trackers()
    client.clear_before_next_output = False
    outs = []
    chunk = "x" * 4096
    for _ in range(1000):   # 4 MB printed by one cell
        client.output(outs, {"msg_type": "stream", "content": {"name": "stdout", "text": chunk},
                                "header": {"msg_type": "stream"}, "parent_header": {}}, None, 0)
    kept = sum(len(o.get("text", "")) for o in outs)
    assert kept <= phase1.MAX_OUTPUT + len(chunk)
    client.output(outs, {"msg_type": "error", "header": {"msg_type": "error"}, "parent_header": {}, "content": {"ename": "ValueError", "evalue": "v" * 10**6,
                                                                         "traceback": ["t" * 10**6] * 100}}, None, 0)
    assert outs[-1]["ename"] == "ValueError" and len(outs[-1]["evalue"]) <= 2000 and len(outs[-1]["traceback"]) <= 20


def test_phase1_events_tell_the_machines_faults_from_the_notebooks():
    notes, errors, timed_out, fault = grading._phase1_notes(
        [{"kind": "failed", "started": False, "error": "bwrap: execvp: No such file or directory"}], 60)
    assert fault and grading._MACHINE in notes[0] and not timed_out
    notes, errors, timed_out, fault = grading._phase1_notes(
        [{"kind": "started"}, {"kind": "error", "cell": 12, "error": "NameError: x"},
         {"kind": "timeout", "cell": 39, "seconds": 60}, {"kind": "failed", "started": True, "error": "KeyError"}], 60)
    assert not fault and timed_out and errors == ["cell 12: NameError: x"]
    assert notes[0] == "cell 39 was stopped by the 60 s per-cell time limit" and "stopped answering" in notes[1]
    notes, _, timed_out, fault = grading._phase1_notes([{"kind": "started"}, {"kind": "answers", "problems": []}], 60)
    assert (notes, timed_out, fault) == ([], False, False)   # no limit reached: no timeout status
