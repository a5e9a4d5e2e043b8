"""course_utils.authoring.loader_benchmark: it times the exercise's reference pipeline, run from the source notebook."""
from __future__ import annotations

import nbformat
import pytest
import torch

from course_utils.authoring import exercise, loader_benchmark


def test_solution_namespace_runs_the_reference_cells_on_the_given_data(toy_root):
    ns = loader_benchmark.solution_namespace(toy_root)
    constants = loader_benchmark._constants(nbformat.read(exercise.SOURCE, as_version=4))
    assert constants["SIZE"] == 64 and constants["LOAD_PX"] > constants["SIZE"]
    train_ds, loader = ns["train_ds"], ns["train_loader"]
    assert len(train_ds) == len(ns["splits"]["train"]) == 12 and len(ns["val_ds"]) == 0  # 24 toy images
    image, mask = ns["VOCDataset"](toy_root, ns["splits"]["train"][:1])[0]  # no transform: the kept arrays
    assert min(image.shape[:2]) == constants["LOAD_PX"] and mask.shape == image.shape[:2]
    images, masks = next(iter(loader))
    assert images.dtype == torch.uint8 and tuple(images.shape[1:]) == (64, 64, 3) and tuple(masks.shape[1:]) == (64, 64)
    x, y = ns["finish_train"](images, masks)
    assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (3, 64, 64) and y.dtype == torch.int64
    assert abs(float(x.mean())) < 3


def test_benchmark_reports_the_three_rates_and_restores_the_thread_count(toy_root, capsys):
    threads = torch.get_num_threads()
    res = loader_benchmark.benchmark(toy_root, repeats=1, n_naive=4)
    assert set(res) == {"naive", "cached", "device_step"}
    assert all(cpu > 0 and wall > 0 for cpu, wall in res.values())
    out = capsys.readouterr().out
    assert "generated VOC" in out and "train split 12 images" in out and "cached / naive" in out
    assert torch.get_num_threads() == threads


def test_a_notebook_without_the_solution_cells_is_refused(tmp_path, toy_root):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("SIZE = 64")])
    path = tmp_path / "other.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="solution cell"):
        loader_benchmark.solution_namespace(toy_root, path)


def test_constants_need_plain_values():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("!ls\nSIZE = 64"),
                                         nbformat.v4.new_code_cell("SIZE = 64\nLOAD_PX = 72\nSEED = 0")])
    with pytest.raises(ValueError, match="BATCH_SIZE"):
        loader_benchmark._constants(nb)
    nb.cells.append(nbformat.v4.new_code_cell("BATCH_SIZE = 16"))
    assert loader_benchmark._constants(nb) == {"SIZE": 64, "LOAD_PX": 72, "SEED": 0, "BATCH_SIZE": 16}
