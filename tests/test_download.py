"""course_utils.download: the one downloader and PASCAL VOC's download, against a local HTTP server (127.0.0.1 only)."""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest

from course_utils import download, voc, voc_dataset, voc_generated

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
    src = voc_generated.make_toy_voc(tmp_path_factory.mktemp("tarsrc"), 4, seed=5)
    (voc.voc_folder(src) / voc.GENERATED_MARKER).unlink()  # pretend it is the real thing
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
        out = download.download_voc(tmp_path, urls=urls, md5=_md5(voc_tar))
        assert [p for p, _ in srv.log] == ["/missing/voc.tar", "/good/voc.tar"]
        assert out == voc.voc_folder(tmp_path) and voc.voc_is_complete(tmp_path)
        assert _leftovers(tmp_path) == ["VOCdevkit"]  # archive deleted, no temporary folders
        ds = voc_dataset.VOCVariation(tmp_path, "test")
        assert ds.kind == "real" and ds[0][1].dtype == np.uint8
        srv.log.clear()
        download.download_voc(tmp_path, urls=urls, md5=_md5(voc_tar))  # already there: no request at all
        assert srv.log == []


def test_download_checksum_mismatch_leaves_nothing(tmp_path, voc_tar):
    with _Server() as srv:
        srv.files["/voc.tar"] = voc_tar
        with pytest.raises(RuntimeError, match="checksum"):
            download.download_voc(tmp_path, urls=[srv.url("/voc.tar")], md5="0" * 32)
    assert _leftovers(tmp_path) == []


def test_download_resumes_truncated_file_with_range(tmp_path, voc_tar):
    half = len(voc_tar) // 2
    with _Server() as srv:
        srv.files["/a/voc.tar"] = voc_tar
        srv.files["/b/voc.tar"] = voc_tar
        srv.truncate["/a/voc.tar"] = half  # the first server drops the connection halfway
        download.download_voc(tmp_path, urls=[srv.url("/a/voc.tar"), srv.url("/b/voc.tar")], md5=_md5(voc_tar))
        assert srv.log == [("/a/voc.tar", None), ("/b/voc.tar", f"bytes={half}-")]
    assert voc.voc_is_complete(tmp_path) and _leftovers(tmp_path) == ["VOCdevkit"]
    # a .part left by an interrupted earlier session is resumed too, by a later call
    root = tmp_path / "later"
    root.mkdir()
    (root / (download.VOC_TAR_NAME + ".part")).write_bytes(voc_tar[:1000])
    with _Server() as srv:
        srv.files["/voc.tar"] = voc_tar
        download.download_voc(root, urls=[srv.url("/voc.tar")], md5=_md5(voc_tar))
        assert srv.log == [("/voc.tar", "bytes=1000-")]
    assert voc.voc_is_complete(root)


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
            download.download_voc(root, urls=[srv.url("/voc.tar")], md5=_md5(bad))
    assert not (tmp_path / "evil.txt").exists() and not (root.parent / "evil.txt").exists()
    assert _leftovers(root) == []  # no half dataset, no archive, no temporary folder


def test_download_all_urls_fail_names_each(tmp_path):
    with _Server() as srv:
        urls = [srv.url("/x.tar"), srv.url("/y.tar")]
        with pytest.raises(RuntimeError) as info:
            download.download_voc(tmp_path, urls=urls, md5="0" * 32, timeout=5)
    assert "/x.tar" in str(info.value) and "/y.tar" in str(info.value) and "404" in str(info.value)
    assert not voc.voc_folder(tmp_path).exists()
