"""Tests for the VOC pipeline in course_utils.data (issue 6): generated dataset, splits, transforms,
DataLoader, get_voc offline, download (against a local HTTP server) and the in-memory fast path."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from course_utils import data as D

# Albumentations only *warns* about wrong or outdated arguments and then ignores them: fail instead.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::DeprecationWarning:albumentations.*")

N_TOY = 24


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return D.make_toy_voc(tmp_path_factory.mktemp("toy"), N_TOY, seed=3)


def test_toy_layout_read_by_torchvision(toy_root):
    from torchvision.datasets import VOCSegmentation

    for image_set, n in (("train", N_TOY // 2), ("val", N_TOY - N_TOY // 2), ("trainval", N_TOY)):
        ds = VOCSegmentation(str(toy_root), year="2012", image_set=image_set, download=False)
        assert len(ds) == n
    image, target = ds[7]  # every 40th image, starting at 7, is a grayscale JPEG
    assert image.mode == "RGB" and target.mode == "P"
    assert np.array_equal(np.asarray(target.getpalette(), np.uint8).reshape(-1, 3)[:256], D.VOC_COLORMAP)
    w, h = image.size
    assert target.size == (w, h) and max(w, h) == 500 and min(w, h) >= 281


def test_toy_masks_classes_void_band_and_all_classes(tmp_path):
    root = D.make_toy_voc(tmp_path, 50, seed=0)
    seen = set()
    for i in range(50):
        image, mask = D.load_voc_sample(D.voc_folder(root), f"toy_{i:06d}")
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        values = set(np.unique(mask).tolist())
        assert values <= set(range(21)) | {255}
        objects = values - {0, 255}
        assert objects, "every image has at least one object"
        assert 255 in values, "objects are outlined by void"
        seen |= objects
        # the void band separates every object from the background: no 4-neighbours 0 | object
        a, b = mask[:, 1:], mask[:, :-1]
        assert not np.any(((a == 0) & (b != 0) & (b != 255)) | ((b == 0) & (a != 0) & (a != 255)))
    assert seen == set(range(1, 21)), f"missing classes: {set(range(1, 21)) - seen}"


def test_toy_deterministic_and_seed_dependent(tmp_path):
    a = D.make_toy_voc(tmp_path / "a", 6, seed=1)
    b = D.make_toy_voc(tmp_path / "b", 6, seed=1)
    c = D.make_toy_voc(tmp_path / "c", 6, seed=2)
    for sub in ("JPEGImages/toy_000004.jpg", "SegmentationClass/toy_000004.png"):
        assert (D.voc_folder(a) / sub).read_bytes() == (D.voc_folder(b) / sub).read_bytes()
        assert (D.voc_folder(a) / sub).read_bytes() != (D.voc_folder(c) / sub).read_bytes()


def test_toy_appearance_is_unique_per_class_but_no_single_cue_suffices():
    looks = [D.toy_class_appearance(k) for k in range(1, 21)]
    assert len({(l["shape"], l["texture"], l["hue"]) for l in looks}) == 20
    for cue in ("shape", "texture", "hue"):
        assert len({l[cue] for l in looks}) < 20
    with pytest.raises(ValueError):
        D.toy_class_appearance(0)


def test_toy_is_cached_and_never_overwrites_real_data(tmp_path, toy_root):
    marker = D.voc_folder(toy_root) / D.TOY_MARKER
    before = marker.stat().st_mtime_ns
    D.make_toy_voc(toy_root, N_TOY, seed=3)
    assert marker.stat().st_mtime_ns == before
    real = tmp_path / "real"
    (D.voc_folder(real) / "JPEGImages").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a generated dataset"):
        D.make_toy_voc(real, 6)
    with pytest.raises(ValueError):
        D.make_toy_voc(tmp_path / "x", 2)


def test_splits_disjoint_deterministic_cover_trainval():
    ids = [f"2008_{i:06d}" for i in range(2913)]
    parts = {s: D.voc_split_ids(ids, s, seed=0) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [1456, 728, 729]
    assert set().union(*map(set, parts.values())) == set(ids)
    assert sum(map(len, parts.values())) == len(ids)
    assert D.voc_split_ids(list(reversed(ids)), "val", seed=0) == parts["val"]  # order of the file irrelevant
    assert D.voc_split_ids(ids, "val", seed=1) != parts["val"]
    with pytest.raises(ValueError, match="split"):
        D.voc_split_ids(ids, "trainval")


def test_variation_on_toy(toy_root):
    sets = {s: D.VOCVariation(toy_root, s) for s in ("train", "val", "test")}
    assert [len(sets[s]) for s in ("train", "val", "test")] == [12, 6, 6]
    assert sets["train"].kind == "generated"
    trainval = (D.voc_folder(toy_root) / "ImageSets/Segmentation/trainval.txt").read_text().split()
    assert sorted(sum((sets[s].ids for s in sets), [])) == sorted(trainval)
    image, mask = sets["train"][0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
    assert isinstance(sets["train"], torch.utils.data.Dataset)
    with pytest.raises(IndexError):
        sets["val"][6]


def test_grayscale_jpeg_comes_back_rgb(toy_root):
    from PIL import Image

    ds = D.VOCVariation(toy_root, "train")
    ds.ids = ["toy_000007"]
    assert Image.open(D.voc_folder(toy_root) / "JPEGImages/toy_000007.jpg").mode == "L"
    image, _ = ds[0]
    assert image.shape[2] == 3 and np.array_equal(image[..., 0], image[..., 2])


def test_missing_dataset_error_names_path_and_remedies(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        D.VOCVariation(tmp_path, "train")
    msg = str(info.value)
    assert str(D.voc_folder(tmp_path)) in msg and "download_voc" in msg and "make_toy_voc" in msg
    with pytest.raises(ValueError, match="split"):
        D.VOCVariation(tmp_path, "trainval")


@pytest.mark.parametrize("train", [True, False])
def test_transforms_shapes_dtypes_and_labels(toy_root, train):
    ds = D.VOCVariation(toy_root, "train", transform=D.voc_transforms(64, train=train))
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32
        assert y.shape == (64, 64) and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= set(range(21)) | {255}
    assert -3 < float(x.mean()) < 3  # ImageNet normalisation, not raw 0..255


def test_eval_transform_is_deterministic_and_pads_with_void():
    t = D.voc_transforms(64, train=False)
    image = np.full((375, 500, 3), 200, np.uint8)
    mask = np.full((375, 500), 7, np.uint8)
    a, b = t(image=image, mask=mask), t(image=image, mask=mask)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    values, counts = np.unique(a["mask"].numpy(), return_counts=True)
    assert values.tolist() == [7, 255]  # 500x375 -> 64x48 plus 16 rows of void padding
    assert counts.tolist() == [64 * 48, 64 * 16]


def test_train_transform_uses_nearest_for_masks():
    # a fine checkerboard of two classes: any interpolation but nearest would create other values
    mask = ((np.indices((300, 400)).sum(0) % 2) * 13 + 2).astype(np.uint8)
    image = np.zeros((300, 400, 3), np.uint8)
    t = D.voc_transforms(48, train=True)
    for _ in range(10):
        assert set(np.unique(t(image=image, mask=mask)["mask"].numpy()).tolist()) <= {2, 15}
    with pytest.raises(ValueError):
        D.voc_transforms(0)


def test_train_transform_seed_makes_augmentation_repeatable():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    mask = rng.integers(0, 21, (120, 160), dtype=np.uint8)

    def draws(t, n=5):
        return [t(image=image, mask=mask)["image"] for _ in range(n)]

    a, b = draws(D.voc_transforms(32, seed=7)), draws(D.voc_transforms(32, seed=7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = draws(D.voc_transforms(32, seed=8))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    t = D.voc_transforms(32, seed=7)
    draws(t)
    t.set_random_seed(7)                      # restart the same sequence
    assert all(torch.equal(x, y) for x, y in zip(a, draws(t)))
    # torch's global seed does not reach Albumentations: two unseeded pipelines differ
    torch.manual_seed(0)
    d = draws(D.voc_transforms(32))
    torch.manual_seed(0)
    e = draws(D.voc_transforms(32))
    assert not all(torch.equal(x, y) for x, y in zip(d, e))


def test_dataloader_batch_shapes(toy_root):
    ds = D.VOCVariation(toy_root, "train", transform=D.voc_transforms(64))
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True)))
    assert x.shape == (5, 3, 64, 64) and y.shape == (5, 64, 64) and y.dtype == torch.int64
    loss = torch.nn.functional.cross_entropy(torch.zeros(5, 21, 64, 64), y, ignore_index=D.IGNORE_INDEX)
    assert torch.isfinite(loss)


def test_get_voc_offline_generates_once_and_keeps_real_place_free(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")

    def no_network(*a, **k):
        raise AssertionError("get_voc touched the network in offline mode")

    monkeypatch.setattr(D, "download_voc", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    root, kind = D.get_voc(tmp_path, toy_images=8)
    assert kind == "generated" and root == tmp_path / "toy-voc"
    assert not D.voc_folder(tmp_path).exists()
    out = capsys.readouterr().out
    assert "GENERATED" in out and "built now" in out and str(tmp_path) not in out
    again = D.get_voc(tmp_path, toy_images=8)
    assert again == (root, "generated") and "reused" in capsys.readouterr().out


def test_get_voc_prefers_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    D.make_toy_voc(tmp_path / "fake", 4)
    # a "real" dataset: the same files without the generated marker
    import shutil

    shutil.copytree(D.voc_folder(tmp_path / "fake"), D.voc_folder(tmp_path))
    (D.voc_folder(tmp_path) / D.TOY_MARKER).unlink()
    assert D.get_voc(tmp_path) == (tmp_path, "real")


# ------------------------------------------------------------------ download, against a local server
import hashlib
import http.server
import io
import tarfile
import threading


class _Server:
    """A tiny HTTP server on 127.0.0.1: ``files`` maps a path to bytes (404 otherwise); paths in
    ``truncate`` send the full Content-Length but only that many bytes, then close; honours
    ``Range: bytes=N-`` with 206. ``log`` records (path, Range header) of every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}
        self.log: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                outer.log.append((self.path, self.headers.get("Range")))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = outer.truncate.get(self.path)
                self.wfile.write(body[start:cut] if cut is not None and not rng else body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def voc_tar(tmp_path_factory) -> bytes:
    """A small tar with the real archive's layout (VOCdevkit/VOC2012/...), 4 generated images."""
    src = D.make_toy_voc(tmp_path_factory.mktemp("tarsrc"), 4, seed=5)
    (D.voc_folder(src) / D.TOY_MARKER).unlink()  # pretend it is the real thing
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src / "VOCdevkit", arcname="VOCdevkit")
    return buf.getvalue()


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _leftovers(root):
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_falls_through_404_then_extracts(tmp_path, voc_tar):
    with _Server() as srv:
        srv.files["/good/voc.tar"] = voc_tar
        urls = [srv.url("/missing/voc.tar"), srv.url("/good/voc.tar")]
        out = D.download_voc(tmp_path, urls=urls, md5=_md5(voc_tar))
        assert [p for p, _ in srv.log] == ["/missing/voc.tar", "/good/voc.tar"]
        assert out == D.voc_folder(tmp_path) and D.voc_is_complete(tmp_path)
        assert _leftovers(tmp_path) == ["VOCdevkit"]  # archive deleted, no temporary folders
        ds = D.VOCVariation(tmp_path, "test")
        assert ds.kind == "real" and ds[0][1].dtype == np.uint8
        srv.log.clear()
        D.download_voc(tmp_path, urls=urls, md5=_md5(voc_tar))  # already there: no request at all
        assert srv.log == []


def test_download_checksum_mismatch_leaves_nothing(tmp_path, voc_tar):
    with _Server() as srv:
        srv.files["/voc.tar"] = voc_tar
        with pytest.raises(RuntimeError, match="checksum"):
            D.download_voc(tmp_path, urls=[srv.url("/voc.tar")], md5="0" * 32)
    assert _leftovers(tmp_path) == []


def test_download_resumes_truncated_file_with_range(tmp_path, voc_tar):
    half = len(voc_tar) // 2
    with _Server() as srv:
        srv.files["/a/voc.tar"] = voc_tar
        srv.files["/b/voc.tar"] = voc_tar
        srv.truncate["/a/voc.tar"] = half  # the first server drops the connection halfway
        D.download_voc(tmp_path, urls=[srv.url("/a/voc.tar"), srv.url("/b/voc.tar")], md5=_md5(voc_tar))
        assert srv.log == [("/a/voc.tar", None), ("/b/voc.tar", f"bytes={half}-")]
    assert D.voc_is_complete(tmp_path) and _leftovers(tmp_path) == ["VOCdevkit"]
    # a .part left by an interrupted earlier session is resumed too, by a later call
    root = tmp_path / "later"
    root.mkdir()
    (root / (D.VOC_TAR_NAME + ".part")).write_bytes(voc_tar[:1000])
    with _Server() as srv:
        srv.files["/voc.tar"] = voc_tar
        D.download_voc(root, urls=[srv.url("/voc.tar")], md5=_md5(voc_tar))
        assert srv.log == [("/voc.tar", "bytes=1000-")]
    assert D.voc_is_complete(root)


def test_download_refuses_member_outside_root(tmp_path, voc_tar):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        with tarfile.open(fileobj=io.BytesIO(voc_tar)) as good:
            for member in good.getmembers():
                tar.addfile(member, good.extractfile(member) if member.isfile() else None)
        evil = tarfile.TarInfo("VOCdevkit/../../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    bad = buf.getvalue()
    root = tmp_path / "root"
    with _Server() as srv:
        srv.files["/voc.tar"] = bad
        with pytest.raises(RuntimeError, match="outside"):
            D.download_voc(root, urls=[srv.url("/voc.tar")], md5=_md5(bad))
    assert not (tmp_path / "evil.txt").exists() and not (root.parent / "evil.txt").exists()
    assert _leftovers(root) == []  # no half dataset, no archive, no temporary folder


def test_download_all_urls_fail_names_each(tmp_path):
    with _Server() as srv:
        urls = [srv.url("/x.tar"), srv.url("/y.tar")]
        with pytest.raises(RuntimeError) as info:
            D.download_voc(tmp_path, urls=urls, md5="0" * 32, timeout=5)
    assert "/x.tar" in str(info.value) and "/y.tar" in str(info.value) and "404" in str(info.value)
    assert not D.voc_folder(tmp_path).exists()


# ------------------------------------------------------------------ fast path
def test_preload_same_samples_smaller_and_cached(toy_root, monkeypatch):
    naive = D.VOCVariation(toy_root, "val", D.voc_transforms(64, train=False))
    mem = D.VOCVariation(toy_root, "val", D.voc_transforms(64, train=False), preload=80)
    assert mem.ids == naive.ids and len(mem) == len(naive)
    for i in range(len(mem)):
        small, small_mask = mem.load(i)
        full = naive.load(i)[0]
        assert min(small.shape[:2]) == 80 and small.dtype == np.uint8 and small_mask.shape == small.shape[:2]
        assert abs(small.shape[1] / small.shape[0] - full.shape[1] / full.shape[0]) < 0.02  # aspect kept
        (xa, ya), (xb, yb) = naive[i], mem[i]
        assert ya.dtype == yb.dtype == torch.int64
        assert (ya == yb).float().mean() > 0.93  # same labels up to resampling at object borders
        assert (xa - xb).abs().mean() < 0.1  # normalised units: a few grey levels
    # a second dataset reads the cache file and decodes nothing
    monkeypatch.setattr(D, "_decode_small", lambda *a: pytest.fail("decoded a JPEG despite the cache"))
    again = D.VOCVariation(toy_root, "val", preload=80)
    assert all(np.array_equal(a, b) for a, b in zip(again._images, mem._images))
    assert list((toy_root / D.CACHE_SUBDIR).glob("*.npz"))
    with pytest.raises(ValueError, match="preload"):
        D.VOCVariation(toy_root, "val", preload=0)


@pytest.fixture(scope="module")
def mem_train(toy_root):
    return D.VOCVariation(toy_root, "train", preload=80, cache=False)


def test_fast_loader_batches(mem_train):
    loader = D.FastVOCLoader(mem_train, batch_size=5, seed=1)
    assert len(loader) == 3  # 12 images: 5 + 5 + 2
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [5, 5, 2]
    for x, y in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 64, 64)
        assert y.dtype == torch.int64 and y.shape[1:] == (64, 64)
        assert set(y.unique().tolist()) <= set(range(21)) | {255}
    # deterministic for a seed, different across epochs
    again = list(D.FastVOCLoader(mem_train, batch_size=5, seed=1))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    assert not torch.equal(next(iter(loader))[0][:2], batches[0][0][:2])
    assert len(D.FastVOCLoader(mem_train, batch_size=5, drop_last=True)) == 2
    with pytest.raises(TypeError):
        D.FastVOCLoader([1, 2, 3])


def test_fast_loader_eval_matches_albumentations(mem_train):
    loader = D.FastVOCLoader(mem_train, batch_size=4, train=False)
    t = D.voc_transforms(64, train=False)
    x, y = next(iter(loader))
    for j in range(4):
        image, mask = mem_train.load(j)
        ref = t(image=image, mask=mask)
        assert torch.equal(y[j], ref["mask"].long())
        assert torch.allclose(x[j], ref["image"], atol=1e-4)


def test_fast_loader_train_sanity(mem_train):
    # normalised images, and crops of the images (mostly labelled pixels, not padding)
    loader = D.FastVOCLoader(mem_train, batch_size=12, seed=0)
    x, y = next(iter(loader))
    assert x.mean().abs() < 3 and (y == 255).float().mean() < 0.5


def test_colour_matrices():
    rng = np.random.default_rng(0)
    m, c, on = D._colour_matrices(rng, 200, 1.0, 0.0, 0.0, 0.0, 0.3)  # hue only
    grey = np.full(3, 100.0)
    assert np.allclose(m @ grey, grey)  # a hue rotation leaves grey alone
    m, c, on = D._colour_matrices(rng, 50, 0.0, 0.2, 0.2, 0.2, 0.02)  # p = 0: identity
    assert np.allclose(m, np.eye(3)) and np.allclose(c, 1) and not on.any()
    m, _, _ = D._colour_matrices(rng, 50, 1.0, 0.0, 0.0, 1.0, 0.0)  # saturation factor in [0, 2]
    red = np.array([200.0, 0.0, 0.0])
    assert np.allclose((m @ red) @ np.array([0.299, 0.587, 0.114]), 0.299 * 200)  # gray value kept


def test_rrc_boxes_inside_images_and_scaled():
    rng = np.random.default_rng(0)
    hw = np.array([[80, 107]] * 500 + [[107, 80]] * 500)
    boxes = D._rrc_boxes(rng, hw, (0.25, 1.0), (0.8, 1.25))
    y, x, h, w = boxes.T
    assert (y >= 0).all() and (x >= 0).all() and (y + h <= hw[:, 0]).all() and (x + w <= hw[:, 1]).all()
    frac = h * w / (hw[:, 0] * hw[:, 1])
    assert frac.min() >= 0.2 and frac.max() <= 1.0 and 0.45 < frac.mean() < 0.75
    assert (0.7 < w / h).all() and (w / h < 1.35).all()


def test_benchmark_runs_small(toy_root, capsys):
    res = D.benchmark(toy_root, repeats=1, n_naive=4, n_fast=24)
    assert set(res) == {"naive", "memory", "fast"} and all(v[0] > 0 for v in res.values())
    assert "fast / naive" in capsys.readouterr().out


def _build_small_toy(root: str) -> float:
    import time as _time

    from course_utils.data import make_toy_voc as _make

    _make(root, 12, seed=3)
    return _time.time()


def test_make_toy_voc_in_parallel_processes_builds_once(tmp_path):
    """pytest -n 2 runs two notebooks at once; both may ask for the generated set at the same moment."""
    import multiprocessing as mp

    from course_utils.data import make_toy_voc, voc_folder, voc_is_complete

    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_build_small_toy, [str(tmp_path)] * 2)
    assert voc_is_complete(tmp_path)
    stamp = (voc_folder(tmp_path) / "JPEGImages").stat().st_mtime_ns
    make_toy_voc(tmp_path, 12, seed=3)  # same arguments: nothing rebuilt
    assert (voc_folder(tmp_path) / "JPEGImages").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".toy-voc-")]  # no leftovers
