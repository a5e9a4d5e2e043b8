"""The package's one downloader, and PASCAL VOC 2012's download on top of it.

:func:`download_file` fetches one URL into a file that appears only when complete and verified
(used for VOC and for pretrained weights). :func:`download_voc` tries the VOC mirrors in turn,
resumes a partial download, checks the MD5 and extracts the archive safely.
Nothing here is called in offline mode (``COURSE_OFFLINE=1``): callers check first.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from .voc import VOC_SUBDIR, is_generated, voc_folder, voc_is_complete

VOC_URLS: tuple[str, ...] = (
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
)
"""Where ``VOCtrainval_11-May-2012.tar`` is fetched from, in order: the official Oxford server
(often down for long spells), then the Oxford mirror that torchvision uses. Same file, same MD5."""
VOC_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
"""MD5 of ``VOCtrainval_11-May-2012.tar`` (1,999,639,040 bytes)."""
VOC_TAR_NAME = "VOCtrainval_11-May-2012.tar"


def file_digest(path: str | os.PathLike, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """Hex digest of a file (``algorithm``: any name ``hashlib.new`` knows, e.g. "md5", "sha256")."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, part: Path, timeout: float, resume: bool, desc: str) -> None:
    """Append ``url``'s bytes to ``part``: after the bytes already there when ``resume`` and the server
    answers a range request with 206; from the start otherwise (a server that ignores the range)."""
    have = part.stat().st_size if resume and part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "course-utils"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # range beyond the end: the file is already complete
            return
        raise
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc if not resumed else f"{desc} (resumed)", leave=False) as bar:
            while block := response.read(1 << 20):
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def download_file(url: str, dest: str | os.PathLike, *, timeout: float = 30.0, resume: bool = False,
                  md5: str | None = None, sha256_prefix: str | None = None) -> Path:
    """Download ``url`` to ``dest``; the file appears at ``dest`` only when complete and verified.

    - The bytes go to ``dest + ".part"`` first. With ``resume=True`` a part left by an earlier,
      interrupted call is continued where the server allows HTTP ranges (else it starts again);
      with ``resume=False`` it is overwritten.
    - ``timeout`` (seconds) bounds every network read, so a stalled server raises instead of hanging.
    - ``md5`` (the whole hex digest) and/or ``sha256_prefix`` (the start of the SHA-256, as in
      torch hub's file names ``name-<hex>.pth``) are checked; a mismatch deletes the part and raises
      RuntimeError. An interrupted download keeps the part when ``resume`` (else deletes it).
    Returns ``dest`` as a Path. Network errors propagate (``OSError`` and its subclasses).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _fetch(url, part, timeout, resume, dest.name)
    except BaseException:
        if not resume:
            part.unlink(missing_ok=True)
        raise
    for algorithm, expected in (("md5", md5), ("sha256", sha256_prefix)):
        if expected is None:
            continue
        got = file_digest(part, algorithm)
        if not got.startswith(expected):
            part.unlink()
            raise RuntimeError(f"checksum mismatch for {url}: {algorithm.upper()} {got}, expected "
                               f"{expected}{'...' if algorithm == 'sha256' else ''}; the file was deleted")
    os.replace(part, dest)
    return dest


def _check_members(tar: tarfile.TarFile, target: Path) -> None:
    """Refuse the whole archive if any member would land outside ``target`` or is a link/device."""
    base = target.resolve()
    for member in tar.getmembers():
        dest = (base / member.name).resolve()
        if member.name.startswith(("/", "\\")) or (dest != base and base not in dest.parents):
            raise RuntimeError(f"unsafe archive: member {member.name!r} would be written outside the "
                               "target folder; nothing was extracted. Delete the archive and download again.")
        if not (member.isfile() or member.isdir()):
            raise RuntimeError(f"unsafe archive: member {member.name!r} is a link or special file; "
                               "nothing was extracted. Delete the archive and download again.")


def _extract_voc(archive: Path, root: Path) -> None:
    """Extract ``archive`` into a temporary folder under ``root`` and move ``VOCdevkit/VOC2012`` into
    place; an error at any point leaves ``root/VOCdevkit/VOC2012`` untouched."""
    tmp = Path(tempfile.mkdtemp(prefix=".voc-extract-", dir=root))
    try:
        with tarfile.open(archive) as tar:
            _check_members(tar, tmp)
            try:
                tar.extractall(tmp, filter="data")
            except TypeError:  # Python < 3.10.12 / 3.11.4 has no filter argument; members were checked
                tar.extractall(tmp)
        if not voc_is_complete(tmp):
            raise RuntimeError(f"the archive has no complete {VOC_SUBDIR} (JPEGImages, SegmentationClass, "
                               "ImageSets/Segmentation/trainval.txt); is it the VOC 2012 trainval tar?")
        dest = voc_folder(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():  # an incomplete earlier attempt: replace it
            shutil.rmtree(dest)
        os.replace(voc_folder(tmp), dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_voc(root: str | os.PathLike, urls: Sequence[str] = VOC_URLS, md5: str = VOC_MD5,
                 *, timeout: float = 30.0, keep_archive: bool = False) -> Path:
    """Download and extract PASCAL VOC 2012 trainval so that ``root/VOCdevkit/VOC2012`` exists.

    - Does nothing when the dataset is already complete at ``root`` (a generated one is replaced).
    - Tries each of ``urls`` in turn (the official server is often down), with a progress bar.
    - Keeps a partial download as ``root/VOCtrainval_11-May-2012.tar.part`` and resumes it where the
      server allows HTTP ranges (a re-run continues instead of starting again).
    - Verifies the MD5 before extracting; a mismatch deletes the file.
    - Extracts safely (a member that would land outside the target, or a link, rejects the archive)
      into a temporary folder and moves ``VOC2012`` into place only when complete, so an interrupted
      or corrupt download never leaves a half dataset.
    - Deletes the 2 GB archive afterwards unless ``keep_archive=True``.
    ``timeout`` is the socket timeout in seconds. Returns ``voc_folder(root)``. Raises RuntimeError
    naming every URL and why it failed when no URL gives a valid archive.
    """
    root = Path(root)
    dest = voc_folder(root)
    if voc_is_complete(root) and not is_generated(root):
        return dest
    if not urls:
        raise ValueError("urls is empty: give at least one address of VOCtrainval_11-May-2012.tar.")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / VOC_TAR_NAME
    failures: list[str] = []
    if archive.exists() and file_digest(archive) != md5:
        archive.unlink()
    for url in ([] if archive.exists() else urls):
        try:
            download_file(url, archive, timeout=timeout, resume=True, md5=md5)
            break
        except Exception as err:  # network errors of every kind, or a bad checksum: try the next URL
            failures.append(f"{url}: {err}")
    if not archive.exists():
        raise RuntimeError("Could not download PASCAL VOC 2012:\n  " + "\n  ".join(failures) +
                           "\nCheck the network and run download_voc again (a partial download resumes), "
                           "or use voc_generated.make_toy_voc for the generated offline dataset.")
    try:
        _extract_voc(archive, root)
    except Exception:
        archive.unlink(missing_ok=True)  # a bad archive would fail the same way next time
        raise
    if not keep_archive:
        archive.unlink()
    return dest
