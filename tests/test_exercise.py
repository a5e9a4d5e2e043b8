"""The graded exercise (notebook 11), graded end to end by the real grader in fast mode.

Submissions are built from the *student version*, as a student would fill it in:

- ``second``: an independent solution written from the student instructions only (a bilinear decoder,
  the other reading of ``root`` (the VOC2012 folder), ``A.SmallestMaxSize`` to shrink, no Dataset subclass,
  ``zero_grad`` after the step, ``index_put_`` for the confusion matrix): full marks;
- ``bug_1`` ... ``bug_6``: the reference solution with exactly one part broken: that part loses its
  points, no other part loses any (``bug_1``'s training batches are 72 px squashed squares, which Part 2's
  test must not notice: it checks the student's dataset with its own crop);
- ``reuse``: the reference solution, but the course's own UNet, metrics and VOC loading do the work of
  parts 2, 3 and 5: those parts (and part 6, whose model is then not the student's) earn nothing;
- ``patch_fit``: the reference solution, with ``course_utils.train.fit``/``evaluate`` patched so that
  nothing trains and every evaluation is perfect: Part 6 earns nothing, the review flags it.

All but ``second`` end at the last graded test (a student may delete the cells after it; they cost CI
time only).

All of them are graded in ONE call of the grader (:func:`grade`, fast mode), which takes a few minutes
on two cores; the checks of the notebook's text and of the re-use detector run in seconds. With
``EXERCISE_FULL_GRADE=1`` the second solution is also graded in full mode, as an instructor grades.
"""
from __future__ import annotations

import ast
import builtins
import copy
import os
import re

import nbformat
import pytest

from course_utils.authoring import exercise, grading

pytest.importorskip("nbgrader")

MARK = "# YOUR CODE HERE\nraise NotImplementedError()"

PARTS: dict[int, tuple[str, ...]] = {
    1: ("test_transforms", "test_transforms_hidden"),
    2: ("test_dataset", "test_dataset_hidden"),
    3: ("test_model", "test_model_hidden"),
    4: ("test_train_step", "test_train_step_hidden"),
    5: ("test_metrics", "test_metrics_hidden"),
    6: ("test_final_miou",),
}
POINTS = {1: 2, 2: 4, 3: 4, 4: 1, 5: 2, 6: 2}


def grade(submissions, out, fast: bool = True) -> dict[str, grading.Result]:
    """The one call of the grader in this module: every submission folder under ``submissions``, fast
    mode by default (a smoke test of the grading, not a grade), two workers. Adapt here if the grader's
    API changes."""
    results = grading.grade_folder(submissions, out, exercise.SOURCE, workers=2, fast=fast, verbose=False)
    return {r.student: r for r in results}


# ---------------------------------------------------------------- building submissions

def _source() -> nbformat.NotebookNode:
    return nbformat.read(exercise.SOURCE, as_version=4)


def _student() -> nbformat.NotebookNode:
    return nbformat.read(exercise.STUDENT, as_version=4)


def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def reference_answers() -> dict[str, str]:
    """The code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` of each solution cell."""
    found = {}
    for cell in _source().cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            found[meta["grade_id"]] = cell.source.split("### BEGIN SOLUTION\n")[1].split("### END SOLUTION")[0]
    return found


def fill(answers: dict[str, str], extra_cells: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The student version with each solution cell's ``# YOUR CODE HERE`` replaced by ``answers[grade_id]``;
    ``extra_cells`` adds a plain code cell after the cell whose source starts with the given text."""
    nb = copy.deepcopy(_student())
    for cell in nb.cells:
        gid = _gid(cell)
        if gid in answers:
            assert MARK in cell.source, gid
            cell.source = cell.source.replace(MARK, answers[gid].rstrip("\n"))
    for start, code in (extra_cells or {}).items():
        index = next(i for i, c in enumerate(nb.cells) if c.source.startswith(start))
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code))
    return nb


SECOND = {
    "transforms": '''
import torch.nn.functional as F

train_transform = A.Compose([A.HorizontalFlip(p=0.5), A.RandomCrop(height=SIZE, width=SIZE)], seed=SEED)
eval_transform = A.Compose([A.CenterCrop(height=SIZE, width=SIZE)])
_constants = {}


def normalize(images):
    device = images.device
    if device not in _constants:  # made once per device, scaled to 0..255
        _constants[device] = (torch.tensor(IMAGENET_MEAN, device=device) * 255,
                              torch.tensor(IMAGENET_STD, device=device) * 255)
    mean, std = _constants[device]
    return ((images.float() - mean) / std).permute(0, 3, 1, 2).contiguous()
''',
    "dataset": '''
once = A.SmallestMaxSize(max_size=LOAD_PX, interpolation=cv2.INTER_AREA)


def split_ids(voc_dir, seed=0):          # this solution reads `root` as the VOC2012 folder itself
    ids = (Path(voc_dir) / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()
    shuffled = [ids[k] for k in np.random.default_rng(seed).permutation(len(ids))]
    a = round(0.5 * len(ids))
    b = a + round(0.25 * len(ids))
    return dict(train=shuffled[:a], val=shuffled[a:b], test=shuffled[b:])


class VOCDataset:                        # no Dataset subclass: __len__ and __getitem__ are enough
    def __init__(self, voc_dir, ids, transform=None):
        voc_dir = Path(voc_dir)
        self.transform = transform
        self.images, self.masks = [], []
        for name in ids:
            image = np.array(Image.open(voc_dir / "JPEGImages" / f"{name}.jpg").convert("RGB"))
            mask = np.array(Image.open(voc_dir / "SegmentationClass" / f"{name}.png"))
            small = once(image=image, mask=mask)
            self.images.append(small["image"])
            self.masks.append(small["mask"])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if self.transform is None:
            return self.images[i], self.masks[i]
        out = self.transform(image=self.images[i], mask=self.masks[i])
        return out["image"], out["mask"]


splits = split_ids(voc, seed=SEED)
train_ds = VOCDataset(voc, splits["train"][:TRAIN_LIMIT], train_transform)
val_ds = VOCDataset(voc, splits["val"][:EVAL_LIMIT], eval_transform)
test_ds = VOCDataset(voc, splits["test"][:EVAL_LIMIT], eval_transform)
train_loader = DataLoader(train_ds, batch_size=BATCH_SIZE, shuffle=True, **LOADER_KW)
val_loader = DataLoader(val_ds, batch_size=BATCH_SIZE, shuffle=False, **LOADER_KW)
test_loader = DataLoader(test_ds, batch_size=BATCH_SIZE, shuffle=False, **LOADER_KW)
''',
    "model": '''
import torch.nn.functional as F


def double_conv(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class MyUNet(nn.Module):
    """Bilinear upsampling, then concatenation with the skip, then two convolutions."""

    def __init__(self, num_classes=21, width=16):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.downs = nn.ModuleList([double_conv(3, w[0]), double_conv(w[0], w[1]), double_conv(w[1], w[2])])
        self.middle = double_conv(w[2], w[3])
        self.ups = nn.ModuleList([double_conv(w[3] + w[2], w[2]), double_conv(w[2] + w[1], w[1]),
                                  double_conv(w[1] + w[0], w[0])])
        self.classify = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.middle(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], dim=1))
        return self.classify(x)
''',
    "train_step": '''
def train_step(model, images, masks, optimizer, loss_fn):
    model.train()
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())
''',
    "metrics": '''
def confusion_matrix(pred, target, num_classes=21, ignore_index=255):
    t, p = target.flatten().long(), pred.flatten().long()
    valid = t != ignore_index
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=t.device)
    cm.index_put_((t[valid], p[valid]), torch.ones_like(t[valid]), accumulate=True)
    return cm


def _tp_fp_fn(cm):
    cm = torch.as_tensor(cm, dtype=torch.float64)
    tp = torch.diagonal(cm)
    return tp, cm.sum(dim=0) - tp, cm.sum(dim=1) - tp


def iou_per_class(cm):
    tp, fp, fn = _tp_fp_fn(cm)
    return tp / (tp + fp + fn)           # 0 / 0 = NaN for a class seen nowhere


def dice_per_class(cm):
    tp, fp, fn = _tp_fp_fn(cm)
    return 2 * tp / (2 * tp + fp + fn)
''',
}

#: One planted bug per part: (solution cell, text of the reference solution, replacement).
BUGS: dict[int, tuple[str, str, str]] = {
    1: ("transforms", "train_transform = A.Compose([A.RandomCrop(height=SIZE, width=SIZE), A.HorizontalFlip(p=0.5)], "
                      "seed=SEED)\neval_transform = A.Compose([A.CenterCrop(height=SIZE, width=SIZE)])",
        "train_transform = A.Compose([A.Resize(LOAD_PX, LOAD_PX), A.HorizontalFlip(p=0.5)], seed=SEED)\n"
        "eval_transform = A.Compose([A.Resize(SIZE, SIZE)])"),                        # squashes
    2: ("dataset", "order = np.random.default_rng(seed).permutation(len(ids))",
        "order = np.arange(len(ids))"),                                                # never shuffles
    3: ("model", "return self.head(x)                  # (N, num_classes, H, W)",
        "return nn.functional.interpolate(self.head(x), size=(64, 64))"),              # square only
    4: ("train_step", "    optimizer.step()\n", ""),                                   # never steps
    5: ("metrics", "union = cm.sum(0) + cm.sum(1) - tp", "union = cm.sum(0)"),         # precision, not IoU
}
#: Part 6's bug: after training, the notebook goes on with a fresh, untrained model.
UNTRAINED = {"fig = viz.plot_history(": "model = MyUNet(num_classes=NUM_CLASSES).to(DEVICE)  # oops: untrained"}

REUSE = {
    "dataset": ("self.samples = [load_small(voc_dir, i) for i in self.ids]",
                "self.samples = [_voc_dataset._decode_small(voc_dir, i, LOAD_PX) for i in self.ids]"),
    "model": ("class MyUNet(nn.Module):\n", "from course_utils.models import UNet as _UNet\n\n\n"
              "class MyUNet(_UNet):\n    def __init__(self, num_classes=NUM_CLASSES, base=16):\n"
              "        super().__init__(num_classes=num_classes)\n\n\nclass _Unused(nn.Module):\n"),
    "metrics": ("def confusion_matrix(pred, target, num_classes=NUM_CLASSES, ignore_index=IGNORE):\n",
                "from course_utils import metrics as _m\n\n\ndef confusion_matrix(pred, target, num_classes=NUM_CLASSES, "
                "ignore_index=IGNORE):\n    return torch.as_tensor(_m.confusion_matrix(pred, target, num_classes, ignore_index))\n\n\n"
                "def _unused(pred, target, num_classes=NUM_CLASSES, ignore_index=IGNORE):\n"),
}


def _with(answers: dict[str, str], gid: str, old: str, new: str) -> dict[str, str]:
    assert old in answers[gid], (gid, old)
    return {**answers, gid: answers[gid].replace(old, new)}


#: A hostile one: the reference answers, and ``train.fit``/``evaluate`` patched right before the training
#: cell, so that nothing trains and every evaluation says "perfect". Part 6's test measures the model with
#: its own code, so the trick gains nothing (and the review flags the patch).
FIT_EVALUATE_TRICK = '''import torch as _torch
import course_utils.train as _train
from course_utils.voc import NUM_CLASSES as _C
def _no_training(model, *args, **kwargs):     # no training: the model always answers "tvmonitor"
    def constant(x):
        out = _torch.zeros(x.shape[0], _C, *x.shape[2:], device=x.device)
        out[:, _C - 1] = 1.0
        return out
    model.forward = constant
    return None
def _perfect(*args, **kwargs):                # and every evaluation says it is perfect
    import numpy as np
    c = kwargs.get("num_classes", 21)
    return {"mean_iou": 1.0, "pixel_accuracy": 1.0, "mean_dice": 1.0, "loss": 0.0, "iou": np.ones(c),
            "dice": np.ones(c), "cm": np.eye(c, dtype=np.int64)}
_train.fit = _no_training
_train.evaluate = _perfect'''


def up_to_the_last_test(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without the cells after its last graded test: a student may delete them, and in CI they
    cost time only (the whole notebook runs in nbval, and ``second`` runs it all under the grader)."""
    last_test = max(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
    nb.cells = nb.cells[:last_test + 1]
    return nb


def fit_evaluate_submission() -> nbformat.NotebookNode:
    """The reference answers, and :data:`FIT_EVALUATE_TRICK` right before the first cell that calls
    ``train.fit`` (importable, so that an older grader can be tried on the same submission)."""
    nb = fill(reference_answers())
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "train.fit(" in c.source
              and not _gid(c))
    nb.cells.insert(at, nbformat.v4.new_code_cell(FIT_EVALUATE_TRICK))
    return up_to_the_last_test(nb)


def submissions() -> dict[str, nbformat.NotebookNode]:
    """Every submission of the graded world; all but ``second`` end at the last graded test."""
    ref = reference_answers()
    subs = {"second": fill(SECOND)}
    for part, (gid, old, new) in BUGS.items():
        subs[f"bug_{part}"] = up_to_the_last_test(fill(_with(ref, gid, old, new)))
    subs["bug_6"] = up_to_the_last_test(fill(ref, extra_cells=UNTRAINED))
    reuse = dict(ref)
    for gid, (old, new) in REUSE.items():
        reuse = _with(reuse, gid, old, new)
    reuse["dataset"] = "import course_utils.voc_dataset as _voc_dataset\n" + reuse["dataset"]
    subs["reuse"] = up_to_the_last_test(fill(reuse))
    subs["patch_fit"] = fit_evaluate_submission()
    return subs


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("exercise")
    for name, nb in submissions().items():
        (root / "subs" / name).mkdir(parents=True)
        nbformat.write(nb, root / "subs" / name / f"{exercise.NOTEBOOK}.ipynb")
    return grade(root / "subs", root / "grades.csv")


def _points(result: grading.Result) -> dict[int, float]:
    return {part: sum(result.parts[c] for c in cells) for part, cells in PARTS.items()}


# ---------------------------------------------------------------- the notebook's text and structure

def test_parts_and_points_are_as_the_notebook_says():
    parts = grading.graded_parts(exercise.SOURCE)
    assert list(parts) == [c for cells in PARTS.values() for c in cells]
    assert {p: sum(parts[c] for c in cells) for p, cells in PARTS.items()} == POINTS
    intro = _source().cells[0].source
    for part, points in POINTS.items():
        assert re.search(rf"^\| {part} \|.*\| {points} \|", intro, flags=re.MULTILINE), f"part {part}: {points} points"


def _names_read(source: str) -> set[str]:
    """Global names a cell reads without defining or importing them itself."""
    tree = ast.parse(source)
    defined, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) else read).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.comprehension):
            defined.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
    return read - defined - set(dir(builtins))


def test_every_name_a_test_cell_uses_is_named_in_the_instructions():
    nb = _source()
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    named = set(re.findall(r"`([A-Za-z_][A-Za-z_0-9]*)", text))
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            source = cell.source.replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", "")
            missing = _names_read(source) - named
            assert not missing, f"{_gid(cell)} uses {sorted(missing)}, which the instructions never name"


def _stored(source: str) -> set[str]:
    """Global names a cell defines: assigned, def/class, imported."""
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names}
    return names


def test_no_other_cell_needs_a_name_that_only_a_test_cell_defines():
    """The grader runs the notebook without its test cells (Phase 1): a handed-out cell that reads a name
    only a test cell made (a plot of the test's losses) would raise there and show up in a student's notes."""
    from_tests: set[str] = set()
    elsewhere: set[str] = set()
    for cell in _student().cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                           else line for line in cell.source.splitlines())   # shell and magic lines: no names
        if (_gid(cell) or "").startswith("test_"):
            from_tests |= _stored(source)
            continue
        needs = (_names_read(source) & from_tests) - elsewhere
        assert not needs, f"cell {_gid(cell) or cell.source[:40]!r} reads {sorted(needs)}, which only a test cell defines"
        elsewhere |= _stored(source)


def test_no_test_cell_rebinds_a_name_the_instructors_cells_import():
    """The grader puts every name the instructor's cells import (np, torch, copy...) back after each test
    cell and voids the test if one had changed: a test cell that assigns such a name scores zero for
    every student. (Part 2's hidden test once stored a folder in `copy`.)"""
    nb = _source()
    imported = set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and not meta.get("solution"):
            source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            imported.update((a.asname or a.name).split(".")[0] for node in ast.walk(tree)
                            if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names)
    assert {"np", "torch", "copy"} <= imported
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            tree = ast.parse(cell.source.replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", ""))
            stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            stored |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            assert not stored & imported, f"{_gid(cell)} assigns {sorted(stored & imported)}, names an instructor cell imports"


def test_student_version_has_no_solution_and_no_hidden_test():
    text = "\n".join(c.source for c in _student().cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "load_small" not in text
    assert text.count(MARK) == len(reference_answers())


def test_hidden_test_cells_are_graded_apart_and_empty_in_the_student_version():
    student = {_gid(c): c for c in _student().cells if _gid(c)}
    source = {_gid(c): c for c in _source().cells if _gid(c)}
    for cells in PARTS.values():
        for gid in cells:
            assert "### BEGIN HIDDEN TESTS" in source[gid].source or gid == cells[0], gid
            if gid.endswith("_hidden"):  # a visible failure cannot skip these checks: they are another cell
                lines = [line for line in student[gid].source.splitlines() if line.strip()]
                assert lines and all(line.startswith("#") for line in lines), gid


def test_second_solution_is_not_the_reference():
    ref = reference_answers()
    assert set(SECOND) == set(ref)
    for gid, code in SECOND.items():
        ref_lines = {line.strip() for line in ref[gid].splitlines() if len(line.strip()) > 25}
        shared = [line for line in code.splitlines() if line.strip() in ref_lines]
        assert len(shared) <= 3, (gid, shared)  # written apart; a few identical lines of the spec are fine


# ---------------------------------------------------------------- the re-use detector

def _notebook_namespace(code: str) -> dict:
    ns = {"__name__": "__main__"}
    exec(compile(code, "<notebook>", "exec"), ns)
    return ns


def test_reuse_detector_finds_the_course_code_however_it_is_reached():
    ns = _notebook_namespace('''
import numpy as np
import torch
from torch import nn
import course_utils as cu
from course_utils import metrics
from course_utils.metrics import iou_per_class as ref_iou
from course_utils.models import DoubleConv, UNet
from course_utils.voc_dataset import VOCVariation

def clean(cm): return np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
def by_module(p, t): return metrics.confusion_matrix(p, t, 21)
def by_alias(cm): return ref_iou(cm)
def helper(cm): return by_alias(cm)
def by_helper(cm): return helper(cm) + 0
def by_package(p, t): return cu.metrics.confusion_matrix(p, t, 21)
def constants_only(x): return x * cu.FAST + np.array(cu.pretrained.IMAGENET_MEAN)
def trains(model, opt): model.train(); opt.zero_grad(); return cu.FAST
class Sub(VOCVariation): pass
class Own(torch.utils.data.Dataset):
    def __getitem__(self, i): return self.load(i)
    def load(self, i): return np.zeros(3)
class Borrows(nn.Module):
    def __init__(self):
        super().__init__(); self.block = DoubleConv(3, 4)
class Plain(nn.Module):
    def __init__(self):
        super().__init__(); self.conv = nn.Conv2d(4, 2, 1)
''')
    found = {name: exercise.reused_course_code(ns[name]) for name in
             ("clean", "by_module", "by_alias", "by_helper", "by_package", "constants_only", "trains", "Sub",
              "Own", "Borrows", "Plain")}
    assert found["clean"] == found["constants_only"] == found["trains"] == found["Own"] == found["Plain"] == []
    assert "course_utils.metrics.confusion_matrix" in found["by_module"]
    assert found["by_package"] == ["course_utils.metrics.confusion_matrix"]
    assert found["by_alias"] == found["by_helper"] == ["course_utils.metrics.iou_per_class"]
    assert found["Sub"] == ["course_utils.voc_dataset.VOCVariation"]
    assert found["Borrows"] == ["course_utils.models.DoubleConv"]
    assert exercise.reused_course_code(ns["Borrows"]()) == ["course_utils.models.DoubleConv"]
    assert exercise.reused_course_code(ns["UNet"](num_classes=3)) == ["course_utils.models.UNet"]
    assert exercise.reused_course_code(ns["Plain"](), ns["Own"]()) == []


# ---------------------------------------------------------------- graded by the real grader (fast mode)

def test_second_independent_solution_scores_full_marks(graded):
    r = graded["second"]
    assert r.status == "graded", r.notes
    assert _points(r) == POINTS, r.notes
    assert r.total == r.max == sum(POINTS.values())


@pytest.mark.skipif(os.environ.get("EXERCISE_FULL_GRADE") != "1",
                    reason="grades in full mode, about 9 minutes on two quiet cores: set EXERCISE_FULL_GRADE=1")
def test_second_independent_solution_scores_full_marks_in_full_mode(tmp_path):
    """What the instructor runs: full mode, the generated data, Part 6's full-mode bar (eight times the
    all-background mIoU) for a decoder other than the reference's."""
    (tmp_path / "subs" / "second").mkdir(parents=True)
    nbformat.write(fill(SECOND), tmp_path / "subs" / "second" / f"{exercise.NOTEBOOK}.ipynb")
    r = grade(tmp_path / "subs", tmp_path / "grades.csv", fast=False)["second"]
    assert r.status == "graded", r.notes
    assert _points(r) == POINTS, r.notes


@pytest.mark.parametrize("part", sorted(PARTS))
def test_a_bug_in_one_part_costs_that_part_only(graded, part):
    r = graded[f"bug_{part}"]
    assert r.status == "graded", r.notes
    points = _points(r)
    assert points[part] == 0, f"part {part}'s bug kept {points[part]} points: {r.notes}"
    assert {p: v for p, v in points.items() if p != part} == {p: v for p, v in POINTS.items() if p != part}, r.notes


def test_reusing_the_course_solutions_earns_nothing_for_those_parts(graded):
    r = graded["reuse"]
    points = _points(r)
    assert points[2] == points[3] == points[5] == points[6] == 0, r.notes
    assert points[1] == POINTS[1] and points[4] == POINTS[4], r.notes


def test_patching_fit_and_evaluate_gains_nothing(graded):
    r = graded["patch_fit"]
    points = _points(r)
    assert points[6] == 0, r.notes
    assert {p: v for p, v in points.items() if p != 6} == {p: v for p, v in POINTS.items() if p != 6}, r.notes
    assert any("course_utils.train" in item for item in r.review), r.review


def test_reuse_detector_tells_attribute_names_from_globals_and_sees_imports_inside_functions():
    ns = _notebook_namespace('''
from course_utils import train

def step(model, optimizer):          # .train() is the model's method, not the global module `train`
    model.train()
    optimizer.zero_grad()

def fits(model, batches):
    return train.fit(model, batches, epochs=1)

def finds_the_data():
    from course_utils.voc_dataset import get_voc
    return get_voc(download=False)[0]

def imports_inside(p, t):
    from course_utils.metrics import confusion_matrix
    return confusion_matrix(p, t, 3)
''')
    assert exercise.reused_course_code(ns["step"]) == []
    assert exercise.reused_course_code(ns["fits"]) == ["course_utils.train", "course_utils.train.fit"]
    assert exercise.reused_course_code(ns["imports_inside"]) == ["course_utils.metrics.confusion_matrix"]
    assert exercise.reused_course_code(ns["finds_the_data"]) == []  # finding the data is not a part's work
