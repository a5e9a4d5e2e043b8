"""pretrained(): cached file, offline fallback, and a download from a local HTTP server (never the internet)."""
import functools
import http.server
import threading

import pytest
import torch
import torchvision

from course_utils import pretrained as P
from course_utils.pretrained import pretrained, weights_file


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty private torch hub cache; downloads pointed at an address that refuses connections."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # honour TORCH_HOME even if set_dir was called
    monkeypatch.setattr(P, "_weights_url", lambda w: "http://127.0.0.1:9/" + w.url.rsplit("/", 1)[1])
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_weights_file_names_the_cache_path(hub):
    weights, path = weights_file("resnet18")
    assert weights == torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert path == hub / "resnet18-f37072fd.pth"
    with pytest.raises(ValueError, match="not a torchvision classification model"):
        weights_file("no_such_net")
    with pytest.raises(ValueError, match="has no weights 'IMAGENET9'"):
        weights_file("resnet18", "IMAGENET9")


def test_offline_gives_random_weights_with_notice(hub, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    model = pretrained("resnet18")
    assert model.weights_source == "random" and not model.is_pretrained
    assert model.fc.out_features == 1000 and not model.training
    out = capsys.readouterr().out
    assert "NOTICE" in out and "RANDOM" in out and "COURSE_OFFLINE=1" in out
    assert not list(hub.glob("*"))  # nothing was written


def test_cached_file_is_loaded(hub, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")  # the cache must work without a network
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    hub.mkdir(parents=True)
    torch.save(reference.state_dict(), hub / "resnet18-f37072fd.pth")
    model = pretrained("resnet18", verbose=False)
    assert model.weights_source == "cached" and model.is_pretrained
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_broken_cached_file_falls_back(hub, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    hub.mkdir(parents=True)
    (hub / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    model = pretrained("resnet18")
    assert model.weights_source == "random"
    assert "could not be loaded" in capsys.readouterr().out


def test_random_googlenet_has_the_pretrained_architecture(hub, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    model = pretrained("googlenet", verbose=False)
    assert model.aux1 is None and model.transform_input
    assert sum(p.numel() for p in model.parameters()) == model.weights.meta["num_params"]


def test_unreachable_server_does_not_hang(hub, monkeypatch, capsys):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    model = pretrained("squeezenet1_1")  # port 9 on localhost refuses at once
    assert model.weights_source == "random"
    assert "not reachable" in capsys.readouterr().out


@pytest.fixture
def server(tmp_path):
    """A local HTTP server that serves tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_local_server(hub, server, monkeypatch):
    root, base = server
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(P, "_weights_url", lambda w: base + w.url.rsplit("/", 1)[1])
    torch.manual_seed(2)
    reference = torchvision.models.squeezenet1_1()
    _, path = weights_file("squeezenet1_1")
    torch.save(reference.state_dict(), root / path.name)
    # our file cannot match torchvision's SHA-256 prefix: with the check on, it is rejected ...
    model = pretrained("squeezenet1_1", verbose=False)
    assert model.weights_source == "random" and not path.exists()
    assert not list(hub.glob("*.partial"))
    # ... and with the check off it is downloaded into the cache and loaded
    model = pretrained("squeezenet1_1", check_hash=False, verbose=False)
    assert model.weights_source == "downloaded" and path.exists()
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert pretrained("squeezenet1_1", verbose=False).weights_source == "cached"


def test_missing_file_on_server_falls_back(hub, server, monkeypatch, capsys):
    _, base = server
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(P, "_weights_url", lambda w: base + "nothing-here.pth")
    model = pretrained("squeezenet1_1")
    assert model.weights_source == "random"
    assert "download failed (HTTPError" in capsys.readouterr().out
