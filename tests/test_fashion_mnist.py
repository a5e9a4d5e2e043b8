"""course_utils.fashion_mnist: the Debian layout, torchvision's layout, missing and corrupt files, and the
download against a local HTTP server (127.0.0.1 only). The IDX files are small ones the tests write."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from course_utils import core
from course_utils import fashion_mnist as fm

N = {"train": 12, "test": 5}


def _idx(array: np.ndarray) -> bytes:
    return bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _data(split: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(len(split))
    return (rng.integers(0, 256, (N[split], 28, 28), dtype=np.uint8),
            (np.arange(N[split]) % 10).astype(np.uint8))


def _files(gz: bool = True) -> dict[str, bytes]:
    """File name -> bytes of the four files (gzipped with a .gz name, or unpacked)."""
    out = {}
    for split, (image_name, label_name) in fm.FILES.items():
        images, labels = _data(split)
        for name, array in ((image_name, images), (label_name, labels)):
            out[name + ".gz" if gz else name] = gzip.compress(_idx(array), mtime=0) if gz else _idx(array)
    return out


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return folder


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No Debian package, an empty data folder, offline: the state of a machine without the data."""
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    return {"debian_dir": tmp_path / "no-debian"}


def _check(result: fm.FashionMNIST, split: str) -> None:
    images, labels = _data(split)
    assert result.images.dtype == np.uint8 and result.images.shape == (N[split], 28, 28)
    assert np.array_equal(result.images, images) and np.array_equal(result.labels, labels)


def test_debian_layout_is_read_first(tmp_path, nowhere):
    debian = _write(tmp_path / "debian", _files())
    _write(fm.torchvision_raw_dir(), {k: b"junk" for k in _files()})  # never read: Debian's files come first
    for split in ("train", "test"):
        result = fm.load_fashion_mnist(split, debian_dir=debian)
        _check(result, split)
        assert "Debian package" in result.source


@pytest.mark.parametrize("gz", [True, False])
def test_torchvision_layout_gz_or_unpacked(nowhere, gz):
    _write(fm.torchvision_raw_dir(), _files(gz))
    result = fm.load_fashion_mnist("test", **nowhere)
    _check(result, "test")
    assert "torchvision" in result.source and "data_dir()/FashionMNIST/raw" in result.source


def test_an_incomplete_debian_folder_is_not_used(tmp_path, nowhere):
    files = _files()
    files.pop("t10k-labels-idx1-ubyte.gz")
    debian = _write(tmp_path / "debian", files)
    with pytest.raises(fm.FashionMNISTNotFound):
        fm.load_fashion_mnist(debian_dir=debian)


def test_missing_everywhere_offline_says_how_to_get_it(nowhere):
    with pytest.raises(fm.FashionMNISTNotFound) as err:
        fm.load_fashion_mnist(**nowhere)
    text = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in text and "COURSE_OFFLINE=1 is set" in text
    assert "COURSE_OFFLINE" in text and "online" in text
    assert not any(fm.torchvision_raw_dir().glob("*"))  # nothing was written


def test_download_false_never_asks_the_network(nowhere, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    monkeypatch.setattr(fm, "is_online", lambda *a, **k: pytest.fail("download=False must not check the network"))
    with pytest.raises(fm.FashionMNISTNotFound, match="download=False"):
        fm.load_fashion_mnist(download=False, **nowhere)


def test_unknown_split():
    with pytest.raises(ValueError, match="'train' and 'test'"):
        fm.load_fashion_mnist("val")


@pytest.mark.parametrize("damage", ["truncated gzip", "truncated data", "bad header", "labels out of range"])
def test_corrupt_files_raise_a_clear_error(nowhere, damage):
    files = _files()
    name = "t10k-images-idx3-ubyte.gz"
    if damage == "truncated gzip":
        files[name] = files[name][: len(files[name]) // 2]
    elif damage == "truncated data":
        files[name] = gzip.compress(_idx(_data("test")[0])[:-100])
    elif damage == "bad header":
        files[name] = gzip.compress(b"\x00\x00\x0d\x03" + _idx(_data("test")[0])[4:])
    else:
        name = "t10k-labels-idx1-ubyte.gz"
        files[name] = gzip.compress(_idx(np.full(N["test"], 12, np.uint8)))
    folder = _write(fm.torchvision_raw_dir(), files)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(fm.FashionMNISTCorrupt) as err:
        fm.load_fashion_mnist("test", **nowhere)
    assert name.removesuffix(".gz") in str(err.value) and ("Delete" in str(err.value))
    assert sorted(p.name for p in folder.iterdir()) == before  # reading writes nothing
    fm.load_fashion_mnist("train", **nowhere)  # the undamaged split still loads


class _Server:
    """An HTTP server on 127.0.0.1 serving ``files`` (path -> bytes); ``truncate`` sends fewer bytes than
    its Content-Length says; ``log`` lists the requested paths."""

    def __init__(self, files: dict[str, bytes], truncate: dict[str, int] | None = None):
        self.files, self.truncate, self.log = files, truncate or {}, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.log.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:outer.truncate.get(self.path)])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/fmnist/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.md5(body).hexdigest() for name, body in files.items()}


def test_download_when_online_then_reuse(nowhere, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    files = _files()
    with _Server({f"/fmnist/{k}": v for k, v in files.items()}) as server:
        result = fm.load_fashion_mnist("train", base_urls=[server.base], md5=_md5s(files), **nowhere)
        assert len(server.log) == 4
        _check(result, "train")
        assert result.source.startswith("downloaded to data_dir()/FashionMNIST/raw")
        assert sorted(p.name for p in fm.torchvision_raw_dir().iterdir()) == sorted(files)
        again = fm.load_fashion_mnist("test", base_urls=[server.base], md5=_md5s(files), **nowhere)
        assert len(server.log) == 4 and "torchvision" in again.source  # the files on disk are reused
    _check(again, "test")


@pytest.mark.parametrize("fault", ["truncated", "wrong md5", "404"])
def test_a_failed_download_leaves_nothing_half_written(nowhere, monkeypatch, fault):
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    files = _files()
    md5 = _md5s(files)
    served = {f"/fmnist/{k}": v for k, v in files.items()}
    bad = "/fmnist/t10k-images-idx3-ubyte.gz"
    truncate = {}
    if fault == "truncated":
        truncate[bad] = 50
    elif fault == "wrong md5":
        md5[bad.rsplit("/", 1)[1]] = "0" * 32
    else:
        del served[bad]
    with _Server(served, truncate) as server:
        with pytest.raises(RuntimeError, match="Could not download t10k-images") as err:
            fm.load_fashion_mnist("train", base_urls=[server.base], md5=md5, **nowhere)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    left = sorted(p.name for p in fm.torchvision_raw_dir().iterdir())
    assert "t10k-images-idx3-ubyte.gz" not in left and not any(n.endswith(".part") for n in left)


def test_a_dead_server_is_not_waited_on(nowhere, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    with _Server({}) as server:
        base = server.base
    core._ONLINE_CACHE.clear()
    with pytest.raises(fm.FashionMNISTNotFound, match="did not answer"):
        fm.load_fashion_mnist(base_urls=[base], **nowhere)


def test_the_installed_debian_package_is_the_real_dataset():
    if not fm._has_all(fm.DEBIAN_DIR):
        if core.env_flag("CI"):  # .ci/run installs the package: missing there is a failure, not a skip
            pytest.fail("CI: the Debian package dataset-fashion-mnist is missing (.ci/run installs it)")
        pytest.skip("the Debian package dataset-fashion-mnist is not installed")
    train, test = fm.load_fashion_mnist("train", download=False), fm.load_fashion_mnist("test", download=False)
    assert train.images.shape == (fm.SIZES["train"], 28, 28) and test.images.shape == (fm.SIZES["test"], 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    assert train.labels[:5].tolist() == [9, 0, 0, 3, 0]  # the published first labels: ankle boot, T-shirt, ...
