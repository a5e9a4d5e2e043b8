import os
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

import course_utils as cu
from course_utils import core


@pytest.mark.parametrize("raw,expected", [("1", True), ("true", True), ("YES", True), ("on", True),
                                          ("0", False), ("false", False), ("", False), ("No", False)])
def test_env_flag_reads_yes_and_no(monkeypatch, raw, expected):
    monkeypatch.setenv("COURSE_X", raw)
    assert cu.env_flag("COURSE_X") is expected


def test_env_flag_default_and_typo(monkeypatch):
    monkeypatch.delenv("COURSE_X", raising=False)
    assert cu.env_flag("COURSE_X") is False and cu.env_flag("COURSE_X", default=True) is True
    monkeypatch.setenv("COURSE_X", "maybe")
    with pytest.raises(ValueError, match="COURSE_X=1"):
        cu.env_flag("COURSE_X")


@pytest.mark.parametrize("fast,offline", [("1", "0"), ("0", "1")])
def test_modes_follow_the_environment_of_the_importing_process(fast, offline):
    env = dict(os.environ, COURSE_FAST=fast, COURSE_OFFLINE=offline)
    code = "import course_utils as cu; print(cu.FAST, cu.OFFLINE, cu.fast_mode(), cu.offline_mode())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    want = f"{fast == '1'} {offline == '1'}"
    assert out.split() == (want + " " + want).split()


def test_mode_functions_read_the_environment_at_call_time(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_OFFLINE", "no")
    assert cu.fast_mode() is True and cu.offline_mode() is False
    monkeypatch.setenv("COURSE_FAST", "off")
    assert cu.fast_mode() is False
    monkeypatch.setenv("COURSE_OFFLINE", "perhaps")
    with pytest.raises(ValueError, match="COURSE_OFFLINE=1"):
        cu.offline_mode()


def test_import_course_utils_stays_light():
    code = ("import sys, course_utils as cu; heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
            "print(heavy); cu.setup; print([m for m in ('torch', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "['torch', 'matplotlib']"


def test_to_numpy_from_tensors_lists_and_arrays():
    t = torch.arange(6.0, requires_grad=True).view(2, 3) * 2
    a = cu.to_numpy(t)
    assert isinstance(a, np.ndarray) and a.shape == (2, 3) and a[1, 2] == 10
    arr = np.zeros(3)
    assert cu.to_numpy(arr) is arr
    assert cu.to_numpy([[1, 2]]).shape == (1, 2)


def test_shown_path_never_prints_the_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "d"))
    assert core.shown_path(tmp_path / "d" / "toy-voc") == "data_dir()/toy-voc"
    assert core.shown_path(tmp_path / "d") == "data_dir()"
    assert core.shown_path(tmp_path / "elsewhere" / "x") == "x"


def test_is_online_respects_offline_without_network(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")

    def boom(*args, **kwargs):
        raise AssertionError("is_online touched the network while offline")

    monkeypatch.setattr(socket, "create_connection", boom)
    assert cu.is_online() is False


def test_is_online_true_for_a_local_server_and_cached(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    core._ONLINE_CACHE.pop(("127.0.0.1", port), None)
    try:
        assert cu.is_online("127.0.0.1", port, timeout=1.0) is True
    finally:
        server.close()
    assert cu.is_online("127.0.0.1", port, timeout=1.0) is True  # cached: the server is gone


def test_is_online_false_for_a_closed_port(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    core._ONLINE_CACHE.pop(("127.0.0.1", port), None)
    assert cu.is_online("127.0.0.1", port, timeout=1.0) is False


def test_is_online_never_hangs(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    core._ONLINE_CACHE.pop(("hang.example", 443), None)
    def stuck(*args, **kwargs):  # like a DNS lookup that hangs, then fails long after the caller gave up
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", stuck)
    start = time.perf_counter()
    assert cu.is_online("hang.example", 443, timeout=0.3) is False
    assert time.perf_counter() - start < 2.0


def test_data_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    default = cu.data_dir()
    assert default.name == "data" and default.is_dir() and default.is_absolute()
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "elsewhere"))
    assert cu.data_dir() == (tmp_path / "elsewhere").resolve() and (tmp_path / "elsewhere").is_dir()


def test_seed_everything_repeats_random_numbers():
    cu.seed_everything(123)
    a = (np.random.rand(3), torch.rand(3))
    cu.seed_everything(123)
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(core, "_mps_available", lambda: False)
    assert cu.get_device().type == "cpu"
    monkeypatch.setattr(core, "_mps_available", lambda: True)
    assert cu.get_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cu.get_device().type == "cuda"


def test_get_device_refuses_missing_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA"):
        cu.get_device("cuda")
    assert cu.get_device("cpu").type == "cpu"


def test_setup_reports_versions_device_and_mode(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    device = cu.setup(seed=1)
    out = capsys.readouterr().out
    assert isinstance(device, torch.device)
    for word in ("torch", "albumentations", "device:", "FAST", "OFFLINE"):
        assert word in out
    assert "Colab" not in out


def test_setup_says_colab_on_colab(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    cu.setup()
    assert "Colab" in capsys.readouterr().out


def _frozen_backbone_model():
    """A model in training mode whose BatchNorm backbone is deliberately kept in eval mode."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    model.train()
    model[1].eval()
    return model


def test_eval_mode_restores_each_submodules_own_flag():
    model = _frozen_backbone_model()
    with cu.eval_mode(model) as inside:
        assert inside is model
        assert not any(m.training for m in model.modules())
    assert model.training and model[0].training and not model[1].training and model[2].training


def test_eval_mode_restores_after_an_error():
    model = _frozen_backbone_model()
    with pytest.raises(RuntimeError):
        with cu.eval_mode(model):
            raise RuntimeError("boom")
    assert model.training and not model[1].training
