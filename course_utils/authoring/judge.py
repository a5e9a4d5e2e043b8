"""Phase 2 of grading the exercise: the grader's own process judges the answers that Phase 1 wrote.

Nothing here runs student code. :func:`read_answers` reads Phase 1's plain data (JSON, and ``.npz`` with
``allow_pickle=False``, each file's size checked before it is read); :func:`judge` makes the same inputs
again from the grade's seed (:func:`.phase1_driver.inputs`), computes every reference itself (the split,
the decoded samples, the crops, the probe network's steps, the confusion matrices, the test split's
masks) and gives each graded test id its points, or zero and one sentence that says why.

What a student's code can do in its own kernel changes only the data it hands over: an answer that is
not the right one earns nothing, whatever the kernel printed or claimed.
"""
from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import phase1_driver as driver

PARTS: dict[str, float] = {
    "test_transforms": 1, "test_transforms_hidden": 1, "test_dataset": 2, "test_dataset_hidden": 2,
    "test_model": 2, "test_model_hidden": 2, "test_train_step": 0.5, "test_train_step_hidden": 0.5,
    "test_metrics": 1, "test_metrics_hidden": 1, "test_final_miou": 2,
}
"""The exercise's graded test cells and their points (as in the source notebook)."""
SOLUTION_PARTS: dict[str, tuple[str, ...]] = {
    "transforms": ("test_transforms", "test_transforms_hidden"),
    "dataset": ("test_dataset", "test_dataset_hidden"),
    "model": ("test_model", "test_model_hidden", "test_final_miou"),
    "train_step": ("test_train_step", "test_train_step_hidden"),
    "metrics": ("test_metrics", "test_metrics_hidden"),
}
"""Which tests each solution cell answers (Part 6 grades the trained MyUNet of the model cell)."""
MAX_JSON_BYTES = 4 << 20
MAX_ARRAY_BYTES = 256 << 20      # all arrays of all parts, uncompressed
ANSWER_FILES = ("answers.json", *(f"part{k}.npz" for k in range(1, 7)))


class AnswersUnreadable(ValueError):
    """Phase 1's answers are missing, too big or malformed (the note says which)."""


def applies(parts: dict[str, float]) -> bool:
    """True when a source notebook's graded parts are this judge's (the exercise)."""
    return list(parts) == list(PARTS)


@dataclass
class Verdict:
    """Points per graded test id, why each lost points, and what was measured (Part 6's mIoU...)."""

    scores: dict[str, float]
    notes: list[str] = field(default_factory=list)
    measures: dict = field(default_factory=dict)


# ---------------------------------------------------------------- reading Phase 1's data

def read_answers(folder: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """``(answers.json, {part: {name: array}})`` from ``folder``; AnswersUnreadable when answers.json is
    missing or bad. A part whose file is missing or unreadable has no arrays (its checks then fail)."""
    folder = Path(folder)
    main = folder / "answers.json"
    if not main.is_file() or main.is_symlink():
        raise AnswersUnreadable("the grader's driver wrote no answers (the notebook did not let it run to its end)")
    if main.stat().st_size > MAX_JSON_BYTES:
        raise AnswersUnreadable(f"the answers file is over {MAX_JSON_BYTES >> 20} MB")
    try:
        answers = json.loads(main.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise AnswersUnreadable(f"the answers file is not valid JSON ({err})") from None
    if not isinstance(answers, dict):
        raise AnswersUnreadable("the answers file does not hold a JSON object")
    arrays: dict[str, dict[str, np.ndarray]] = {}
    budget = MAX_ARRAY_BYTES
    for k in range(1, 7):
        path = folder / f"part{k}.npz"
        arrays[f"part{k}"] = {}
        if not path.is_file() or path.is_symlink():
            continue
        try:
            with zipfile.ZipFile(path) as zf:
                size = sum(info.file_size for info in zf.infolist())
            if size > budget:
                answers.setdefault("errors", {})[f"part{k}"] = "its answers were too big to read back"
                continue
            budget -= size
            with np.load(path, allow_pickle=False) as data:
                arrays[f"part{k}"] = {name: data[name] for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            answers.setdefault("errors", {})[f"part{k}"] = f"its answers could not be read ({type(err).__name__})"
    return answers, arrays


# ---------------------------------------------------------------- small helpers

def _section(answers: dict, part: str) -> dict:
    sub = answers.get(part)
    return sub if isinstance(sub, dict) else {}


def _errors(answers: dict, part: str) -> dict:
    errors = _section(answers, part).get("errors")
    return errors if isinstance(errors, dict) else {}


def _fatal(answers: dict, part: str) -> str | None:
    errors = answers.get("errors")
    return str(errors[part]) if isinstance(errors, dict) and part in errors else None


def _same(a, b) -> bool:
    return a is not None and b is not None and np.shape(a) == np.shape(b) and np.array_equal(a, b)


def _close(a, b, atol=1e-5, rtol=1e-4, nan=False) -> bool:
    try:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=nan))


class _Fail(Exception):
    """One check failed; its message is the note's sentence."""


def _need(condition, why: str) -> None:
    if not condition:
        raise _Fail(why)


def _get(arrays: dict, name: str, what: str, errors: dict | None = None, key: str | None = None) -> np.ndarray:
    if name not in arrays:
        error = (errors or {}).get(key or name)
        raise _Fail(f"{what} raised {error}" if error else f"{what} gave no answer")
    return arrays[name]


def _voc_root(data_dir: Path | None) -> tuple[Path, str] | None:
    """The dataset the grader judges with: ``(root that contains VOCdevkit/, "real" | "generated")``."""
    from ..voc import is_generated, voc_is_complete
    if data_dir is None:
        return None
    data_dir = Path(data_dir)
    if voc_is_complete(data_dir) and not is_generated(data_dir):
        return data_dir, "real"
    if voc_is_complete(data_dir / "toy-voc"):
        return data_dir / "toy-voc", "generated"
    return None


# ---------------------------------------------------------------- the checks, one function per test id

def _window(image: np.ndarray, out: np.ndarray) -> tuple[int, int, bool] | None:
    """Where ``out`` is a SIZE x SIZE window of ``image`` (maybe mirrored): (top, left, flipped)."""
    s = driver.SIZE
    h, w = image.shape[:2]
    for flip in (False, True):
        src = image[:, ::-1] if flip else image
        ys, xs = np.nonzero((src[:h - s + 1, :w - s + 1] == out[0, 0]).all(axis=-1))
        for y, x in zip(ys.tolist(), xs.tolist()):
            if np.array_equal(src[y:y + s, x:x + s], out):
                return y, x, flip
    return None


def _centre(a: np.ndarray) -> np.ndarray:
    s = driver.SIZE
    h, w = a.shape[:2]
    top, left = (h - s) // 2, (w - s) // 2
    return a[top:top + s, left:left + s]


def _expected_normalize(x: np.ndarray) -> np.ndarray:
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((x.astype(np.float64) / 255.0 - mean) / std).transpose(0, 3, 1, 2)


def check_transforms(given, answers, arrays, hidden: bool) -> None:
    a, sub, errs = arrays["part1"], _section(answers, "part1"), _errors(answers, "part1")
    s = driver.SIZE
    if not hidden:
        for k in (0, 1):
            image, mask = given["eval"][k]
            what = f"eval_transform on a {image.shape[0]}x{image.shape[1]} image"
            _need(_same(_get(a, f"eval_image_{k}", what, errs, f"eval_{k}"), _centre(image)),
                  f"{what} did not return its central {s}x{s} crop")
            _need(_same(a.get(f"eval_mask_{k}"), _centre(mask)), f"{what} did not crop the mask like the image")
        image, mask = given["train"]
        for k in range(3):
            im = _get(a, f"train_image_{k}", "train_transform", errs, f"train_{k}")
            m = a.get(f"train_mask_{k}")
            _need(im.shape == (s, s, 3) and im.dtype == np.uint8,
                  f"train_transform should give a ({s}, {s}, 3) uint8 image, it gave {im.shape} {im.dtype}")
            _need(m is not None and m.shape == (s, s) and m.dtype == np.uint8,
                  f"train_transform should give a ({s}, {s}) uint8 mask")
            inside = m != driver.IGNORE
            _need(np.array_equal(m[inside], im[..., 0][inside] // 16),
                  "train_transform must give the mask the same crop and flip as the image")
        x = given["norm_uint8"]
        out = _get(a, "norm_uint8", "normalize on a uint8 batch", errs)
        _need("float32" in str(sub.get("norm_uint8_dtype")), f"normalize should return float32, it returned {sub.get('norm_uint8_dtype')}")
        _need(out.shape == (x.shape[0], 3, *x.shape[1:3]),
              f"normalize should turn a {x.shape} batch into {(x.shape[0], 3, *x.shape[1:3])}, it gave {out.shape}")
        _need(_close(out, _expected_normalize(x), atol=1e-4), "normalize should compute (x / 255 - mean) / std per channel")
        return
    q_image, q_mask = given["eval"][2]
    out = _get(a, "eval_mask_2", "eval_transform on a 64x128 image", errs, "eval_2")
    _need(sorted(np.unique(out).tolist()) == [2] and a.get("eval_image_2", np.zeros(0)).shape == (s, s, 3),
          "eval_transform must crop the centre of a wide image, not squash it")
    image, _ = given["train"]
    windows, flips = set(), set()
    for k in range(given["train_draws"]):
        im = _get(a, f"train_image_{k}", "train_transform", errs, f"train_{k}")
        hit = _window(image, im) if im.shape == (s, s, 3) else None
        _need(hit is not None, f"each output of train_transform must be a {s}x{s} window of its input, maybe "
                               "flipped, and one was not")
        windows.add(hit[:2])
        flips.add(hit[2])
    _need(len(windows) > 1 and flips == {False, True},
          f"train_transform should crop at random places and flip at random; {given['train_draws']} draws gave "
          f"{len(windows)} place(s) and {'both flips' if len(flips) == 2 else 'one orientation only'}")
    x = given["norm_float"]
    out = _get(a, "norm_float", "normalize on a float batch", errs)
    _need(sub.get("norm_float_unchanged") is True, "normalize must not change its input")
    _need(_close(out, _expected_normalize(x), atol=1e-4), "normalize gave wrong values on a float batch of another size")


def check_dataset(given, answers, arrays, hidden: bool, voc: Path, ids: list[str], fast: bool) -> None:
    a, sub, errs = arrays["part2"], _section(answers, "part2"), _errors(answers, "part2")
    from PIL import Image
    ref0 = driver.split_of(ids, 0)
    if not hidden:
        for key, what in (("split_default", "split_ids(root)"), ("split_0", "split_ids(root, 0)")):
            _need(key in sub, f"{what} raised {errs.get(key, 'an error')}")
            _need(sub[key] == ref0, f"{what} is not the spec's split (a seeded permutation, then 0.5 / 0.25 / the rest)")
        _need(sub.get("splits") == ref0, "splits should be split_ids(root, seed=SEED)")
        _need(sub.get("ds_len") == len(given["ds_ids"]), f"VOCDataset raised {errs.get('dataset', 'an error')}"
              if "dataset" in errs else "len(VOCDataset(root, ids)) should be len(ids)")
        for k, image_id in enumerate(given["ds_ids"]):
            image, mask = a.get(f"ds_image_{k}"), a.get(f"ds_mask_{k}")
            full_image = np.asarray(Image.open(voc / "JPEGImages" / f"{image_id}.jpg").convert("RGB"))
            full_mask = np.asarray(Image.open(voc / "SegmentationClass" / f"{image_id}.png"))
            h, w = full_mask.shape
            _need(image is not None and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3,
                  "VOCDataset should return (H, W, 3) uint8 images")
            _need(min(image.shape[:2]) == driver.LOAD_PX,
                  f"the stored images should have a short side of LOAD_PX = {driver.LOAD_PX}, one had {image.shape[:2]}")
            _need(abs(max(image.shape[:2]) - round(driver.LOAD_PX * max(h, w) / min(h, w))) <= 1
                  and (image.shape[0] < image.shape[1]) == (h < w), "VOCDataset should keep the aspect ratio")
            _need(mask is not None and mask.shape == image.shape[:2] and mask.dtype == np.uint8,
                  "VOCDataset's masks should be (H, W) uint8 like the images")
            _need(set(np.unique(mask).tolist()) <= set(np.unique(full_mask).tolist()),
                  "masks should be resized with nearest neighbour (new labels appeared)")
            _need(abs(float(image.mean()) - float(full_image.mean())) < 6, "a stored image does not look like its file")
        _need(a.get("crop_image", np.zeros(0)).shape == (64, 64, 3) and a.get("crop_mask", np.zeros(0)).shape == (64, 64),
              "__getitem__ should apply the transform it was given" + (f" ({errs['transform']})" if "transform" in errs else ""))
        batch = sub.get("batch")
        _need(batch and batch[0] == [[3, 64, 64, 3], "torch.uint8"] and batch[1][0] == [3, 64, 64]
              and "float" not in str(batch[1][1]), "a DataLoader batch of your dataset should be uint8 images and integer masks")
        limit_train, limit_eval = (32, 16) if fast else (None, None)
        expected = [len(ref0["train"][:limit_train]), len(ref0["val"][:limit_eval]), len(ref0["test"][:limit_eval])]
        _need("loaders" not in errs, f"the loaders: {errs.get('loaders')}")
        _need(sub.get("ds_lengths") == expected, f"train_ds, val_ds, test_ds should hold {expected} images, they hold "
                                                 f"{sub.get('ds_lengths')}")
        _need(sub.get("loader_wraps") == [True, True, True], "train_loader, val_loader, test_loader should wrap train_ds, val_ds, test_ds")
        return
    fresh = given["split_seed"]
    _need("split_fresh" in sub, f"split_ids(root, {fresh}) raised {errs.get('split_fresh', 'an error')}")
    _need(sub["split_fresh"] == driver.split_of(ids, fresh), f"split_ids(root, {fresh}) is not the spec's split for that seed")
    _need("kept" not in errs, f"a dataset whose files were deleted after it was built failed: {errs.get('kept')}")
    for k in range(len(given["kept_ids"])):
        _need(_same(a.get(f"kept_before_{k}"), a.get(f"kept_after_{k}")),
              "__getitem__ must not read files (decode each image once, in __init__)")
    calls = sub.get("spy_calls")
    _need(isinstance(calls, list) and len(calls) == 1 and min(calls[0][0][:2]) == driver.LOAD_PX
          and sub.get("spy_out") == [8, 8, 3],
          "__getitem__ should call transform(image=..., mask=...) once per sample, on the stored small arrays")
    _need(sub.get("batch_sizes") == [16, 16, 16], f"the loaders' batch size should be BATCH_SIZE = 16, they have {sub.get('batch_sizes')}")
    _need(sub.get("samplers") == ["random", "sequential", "sequential"],
          "shuffle the training loader only (validation and test keep their order)")
    _need(_same(a.get("val_batch_mask0"), a.get("val_ds_mask0")), "the validation loader should keep the dataset's order")


def check_model(given, answers, arrays, hidden: bool) -> None:
    sub = _section(answers, "part3")
    if "params" not in sub:
        raise _Fail(f"MyUNet could not be built: {_fatal(answers, 'part3') or 'no answer'}")
    shapes = {tuple(s[0]): s[1] for s in sub.get("shapes", []) if isinstance(s, list) and len(s) == 2}

    def shape_ok(shape):
        got = shapes.get(tuple(shape))
        want = [shape[0], 21, *shape[2:]]
        _need(got == want, f"MyUNet on a {tuple(shape)} input should give {tuple(want)}, it gave "
                           f"{tuple(got) if isinstance(got, list) else got}")

    if not hidden:
        _need(sub["params"] < 2_000_000, f"MyUNet has {sub['params']:,} parameters; stay under 2,000,000")
        for shape in given["model_shapes"][:2]:
            shape_ok(shape)
        k, got = sub.get("classes", [None, None])
        _need(got == [1, given["model_classes"], 32, 24],
              f"MyUNet(num_classes={given['model_classes']}) on a 32x24 input should give "
              f"(1, {given['model_classes']}, 32, 24), it gave {got}")
        return
    for shape in given["model_shapes"][2:]:
        shape_ok(shape)
    _need("grads" in sub, f"one training step of MyUNet failed: {_fatal(answers, 'part3')}")
    _need(sub["grads"] and all(sub["grads"]), f"{sum(not g for g in sub['grads'])} parameter(s) of MyUNet got no "
                                               "gradient: every layer should take part in forward")
    _need(sub.get("convs", 0) > 0, "MyUNet should be built from convolutions")


def _reference_steps(given) -> dict:
    """The probe network's loss and weights after the spec's steps, computed here."""
    import torch
    from torch import nn
    images, masks = torch.from_numpy(given["probe_images"]), torch.from_numpy(given["probe_masks"])
    loss_fn = nn.CrossEntropyLoss(ignore_index=driver.IGNORE)
    conv = nn.Conv2d(3, given["probe_classes"], 1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(given["probe_weight"]))
        conv.bias.copy_(torch.from_numpy(given["probe_bias"]))
    ref: dict = {}
    for step in (1, 2):
        opt = torch.optim.SGD(conv.parameters(), lr=0.1)
        opt.zero_grad()
        loss = loss_fn(conv(images), masks)
        if step == 1:
            ref["loss0"] = loss.item()
        loss.backward()
        opt.step()
        ref[f"step{step}"] = (conv.weight.detach().numpy().copy(), conv.bias.detach().numpy().copy())
    net = driver.overfit_probe(given)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(given["overfit_steps"]):
        net.train()
        opt.zero_grad()
        loss = loss_fn(net(images), masks)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    ref["losses"] = losses
    ref["params"] = [p.detach().numpy().copy() for p in net.parameters()]
    return ref


def check_train_step(given, answers, arrays, hidden: bool, ref: dict) -> None:
    a, sub = arrays["part4"], _section(answers, "part4")
    if not hidden:
        losses = sub.get("losses")
        _need(isinstance(losses, list) and len(losses) == given["overfit_steps"],
              f"train_step could not be called {given['overfit_steps']} times: {_fatal(answers, 'part4') or 'no answer'}")
        _need(all(type(v) is float for v in losses), "train_step should return loss.item(), a Python float")
        _need(abs(losses[0] - ref["losses"][0]) < 1e-4, "train_step should return the loss of its step (the first one "
                                                         "was not the network's loss on the batch)")
        params = [a.get(f"overfit_param_{k}") for k in range(len(ref["params"]))]
        _need(all(p is not None and _close(p, r, atol=1e-3, rtol=1e-2) for p, r in zip(params, ref["params"])),
              "after the steps, the weights are not where zero_grad, backward and the optimizer's step take them")
        return
    _need("step_value" in sub, f"train_step failed: {_fatal(answers, 'part4') or 'no answer'}")
    value = sub["step_value"]
    _need(isinstance(value, float) and abs(value - ref["loss0"]) < 1e-5,
          "train_step should return the loss computed in this step, before the update")
    _need(sub.get("training") is True, "train_step should put the model in training mode")
    for step, what in ((1, "one SGD step"), (2, "two SGD steps (clear the gradients in every step)")):
        w, b = ref[f"step{step}"]
        _need(_close(a.get(f"step{step}_weight"), w) and _close(a.get(f"step{step}_bias"), b),
              f"the weights after {what} are not the plain SGD update's")


def check_metrics(given, answers, arrays, hidden: bool) -> None:
    a, errs = arrays["part5"], _errors(answers, "part5")
    if _fatal(answers, "part5") and not a:
        raise _Fail(f"the metrics could not be called: {_fatal(answers, 'part5')}")
    if not hidden:
        cm = _get(a, "cm_example", "confusion_matrix on the worked example", errs)
        _need(_same(cm.astype(np.int64) if cm.dtype.kind in "iuf" else cm,
                    np.array([[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])),
              "confusion_matrix on the worked example: rows = truth, columns = prediction, 255 skipped")
        iou = _get(a, "iou_example", "iou_per_class", errs)
        _need(_close(iou, [1 / 2, 2 / 3, 1.0, np.nan], nan=True), "iou_per_class of the worked example should be "
                                                                 "[0.5, 0.667, 1.0, nan] (class 3 is absent)")
        dice = _get(a, "dice_example", "dice_per_class", errs)
        _need(_close(dice, [2 / 3, 4 / 5, 1.0, np.nan], nan=True), "dice_per_class of the worked example should be "
                                                                  "[0.667, 0.8, 1.0, nan]")
        return
    p, t, k = given["cm_random"]
    keep = t.ravel() != 255
    ref = np.bincount(t.ravel()[keep] * k + p.ravel()[keep], minlength=k * k).reshape(k, k)
    _need(_same(_get(a, "cm_random", "confusion_matrix", errs), ref),
          f"confusion_matrix on a random {k}-class batch with void rows is wrong")
    p, t, k, ig = given["cm_ignore"]
    keep = t != ig
    ref = np.bincount(t[keep] * k + p[keep], minlength=k * k).reshape(k, k)
    _need(_same(_get(a, "cm_ignore", "confusion_matrix with ignore_index", errs), ref),
          f"confusion_matrix should skip the pixels whose target is ignore_index (here {ig})")
    cm = given["cm_given"].astype(np.float64)
    tp, rows, cols = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, dice = tp / (rows + cols - tp), 2 * tp / (rows + cols)
    _need(_close(_get(a, "iou_given", "iou_per_class", errs), iou, nan=True),
          "iou_per_class of a matrix with an absent class is wrong (TP / (TP + FP + FN), NaN where absent)")
    _need(_close(_get(a, "dice_given", "dice_per_class", errs), dice, nan=True),
          "dice_per_class of a matrix with an absent class is wrong (2 TP / (2 TP + FP + FN), NaN where absent)")


def miou(pred: np.ndarray, truth: np.ndarray, c: int = 21) -> float:
    keep = truth != driver.IGNORE
    cm = np.bincount(truth[keep] * c + np.clip(pred[keep], 0, c - 1), minlength=c * c).reshape(c, c).astype(float)
    tp, union = np.diag(cm), cm.sum(0) + cm.sum(1) - np.diag(cm)
    return float(np.mean(tp[union > 0] / union[union > 0])) if (union > 0).any() else 0.0


def check_final(given, answers, arrays, voc: Path, kind: str, fast: bool, measures: dict) -> None:
    sub = _section(answers, "part6")
    pred = arrays["part6"].get("pred")
    if pred is None:
        raise _Fail(f"your trained model could not predict the test images: {_fatal(answers, 'part6') or 'no answer'}")
    ids = given["test_ids"]
    _need(sub.get("ids") == list(ids) and pred.shape == (len(ids), driver.SIZE, driver.SIZE),
          f"the predictions should be ({len(ids)}, 64, 64) class indices, one per test image")
    _need(sub.get("type") == "MyUNet", f"Part 6 grades your own MyUNet; `model` is a {sub.get('type')}")
    truth = np.stack([driver.reference_sample(voc, i)[1] for i in ids]).astype(np.int64).ravel()
    score = miou(pred.astype(np.int64).ravel(), truth)
    background = miou(np.zeros_like(truth), truth)
    multiple = 1 if fast else (8 if kind == "generated" else 3)   # the reference: ~10x (generated)
    measures.update(test_miou=round(score, 4), background_miou=round(background, 4), bar=round(multiple * background, 4),
                    images=len(ids))
    _need(score >= multiple * background and score > 0,
          f"test mIoU {score:.3f} = {score / max(background, 1e-9):.1f} x the all-background {background:.3f}, under the "
          f"bar of {multiple} x ({'fast' if fast else 'full'} mode, {kind} data)")


# ---------------------------------------------------------------- the verdict

def judge(answers_dir: Path, data_dir: Path | None, seed: int, fast: bool, parts: dict[str, float] | None = None,
          zero: dict[str, str] | None = None) -> Verdict:
    """Score every graded test id from Phase 1's answers in ``answers_dir``.

    data_dir: the grader's dataset folder (with the test masks). seed: the grade's seed (the inputs are
    made again from it). parts: points per test id (default :data:`PARTS`). zero: test ids that score
    zero whatever the answers, with the reason (the course's code was imported for that part).
    Raises :class:`AnswersUnreadable` when Phase 1 left no usable answers.
    """
    parts = dict(parts or PARTS)
    answers, arrays = read_answers(answers_dir)
    found = _voc_root(data_dir)
    if found is None:
        raise FileNotFoundError(f"the grader's dataset is not at {data_dir}; it is needed to judge Parts 2 and 6")
    root, kind = found
    voc = root / "VOCdevkit" / "VOC2012"
    ids = (voc / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()
    given = driver.inputs(int(seed), ids, fast)
    if answers.get("seed") != seed:
        answers = {"errors": {p: "the answers were not made for this grade" for p in ("part1", "part2", "part3", "part4",
                                                                                     "part5", "part6")}}
        arrays = {f"part{k}": {} for k in range(1, 7)}
    verdict = Verdict({p: 0.0 for p in parts})
    steps = None
    checks = {
        "test_transforms": lambda: check_transforms(given, answers, arrays, False),
        "test_transforms_hidden": lambda: check_transforms(given, answers, arrays, True),
        "test_dataset": lambda: check_dataset(given, answers, arrays, False, voc, ids, fast),
        "test_dataset_hidden": lambda: check_dataset(given, answers, arrays, True, voc, ids, fast),
        "test_model": lambda: check_model(given, answers, arrays, False),
        "test_model_hidden": lambda: check_model(given, answers, arrays, True),
        "test_train_step": lambda: check_train_step(given, answers, arrays, False, steps),
        "test_train_step_hidden": lambda: check_train_step(given, answers, arrays, True, steps),
        "test_metrics": lambda: check_metrics(given, answers, arrays, False),
        "test_metrics_hidden": lambda: check_metrics(given, answers, arrays, True),
        "test_final_miou": lambda: check_final(given, answers, arrays, voc, kind, fast, verdict.measures),
    }
    part_of = {"test_transforms": "part1", "test_dataset": "part2", "test_model": "part3", "test_train_step": "part4",
               "test_metrics": "part5", "test_final_miou": "part6"}
    for test, check in checks.items():
        if test not in parts:
            continue
        if zero and test in zero:
            verdict.notes.append(f"{test}: {zero[test]}")
            continue
        part = part_of[test.replace("_hidden", "")]
        try:
            if test.startswith("test_train_step") and steps is None:
                steps = _reference_steps(given)
            if not arrays.get(part) and not _section(answers, part) and _fatal(answers, part):
                raise _Fail(f"{_fatal(answers, part)}")
            check()
        except _Fail as why:
            fatal = _fatal(answers, part)
            extra = f" ({fatal})" if fatal and fatal not in str(why) else ""
            verdict.notes.append(f"{test}: {why}{extra}")
            continue
        except Exception as err:  # malformed answers (a wrong type where a list was expected...)
            verdict.notes.append(f"{test}: the answer had an unexpected form ({type(err).__name__}), so the test "
                                 "could not pass")
            continue
        verdict.scores[test] = float(parts[test])
    verdict.measures["seconds"] = answers.get("seconds", {})
    if not math.isfinite(sum(verdict.scores.values())):
        raise AssertionError("scores must be finite")
    return verdict
