"""Resumable, checksum-verified downloads of the openly published augmentation sets, and their extraction.

A download goes to `<file>.partial`; an interrupted one continues from the bytes it has with an HTTP Range
request (a server that ignores Range sends the whole file again, which is then started over). Dropped
connections are retried, resuming each time. The complete file is checked against the published size and MD5
and only then renamed into place; a file already in place is checked again rather than downloaded.
Extraction is marked done by a `.<archive>.extracted` file, so it is not repeated.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from study.datasets.root import PrepareError

CHUNK_BYTES = 1 << 20
ATTEMPTS = 8
TIMEOUT_S = 60


@dataclass(frozen=True)
class Resource:
    """One published archive."""

    name: str
    url: str
    md5: str
    size: int | None
    """Bytes, when published (checked before the MD5)."""

    def at(self, mirror: str | None) -> "Resource":
        """The same archive from a mirror: the URL's path under the mirror's base URL."""
        if not mirror:
            return self
        if not re.match(r"^https?://[^/]+", mirror):
            raise PrepareError(f"--mirror {mirror!r} is not an http(s) URL, e.g. https://us.openslr.org")
        path = re.sub(r"^[a-z]+://[^/]+", "", self.url)
        return Resource(self.name, mirror.rstrip("/") + path, self.md5, self.size)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


MUSAN = Resource("MUSAN (OpenSLR 17)", "https://www.openslr.org/resources/17/musan.tar.gz",
                 "0c472d4fc0c5141eca47ad1ffeb2a7df", 11_086_114_085)
RIRS = Resource("Room Impulse Response and Noise Database (OpenSLR 28)",
                "https://www.openslr.org/resources/28/rirs_noises.zip",
                "e6f48e257286e05de56413b4779d8ffb", 1_311_166_223)
"""The published archives and their MD5 sums (as listed on openslr.org); mirrors serve the same paths."""


class DownloadError(PrepareError):
    """A download that did not complete or did not verify; the message names the URL and the file."""


def md5sum(path: Path) -> str:
    """Hex MD5 of a file."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(resource: Resource, path: Path) -> None:
    size = path.stat().st_size
    if resource.size is not None and size != resource.size:
        raise DownloadError(f"{path}: {size:,} bytes, but {resource.url} has {resource.size:,}")
    got = md5sum(path)
    if got != resource.md5:
        raise DownloadError(f"{path}: MD5 {got} does not match the published {resource.md5} of {resource.url}")


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", header or "")
    return int(match.group(1)) if match else None


def _fetch(resource: Resource, partial: Path, bar: tqdm) -> bool:
    """One request, appending to `partial` from its current size; True when the server sent all it had."""
    offset = partial.stat().st_size if partial.exists() else 0
    if resource.size is not None and offset == resource.size:
        return True
    headers = {"User-Agent": "margin-study/0.1 (study.prepare)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(resource.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after `offset`: the partial file is complete or wrong
            return True
        raise
    with response:
        if response.status == 206:
            if _content_range_start(response.headers.get("Content-Range")) != offset:
                partial.unlink(missing_ok=True)  # a range other than the one asked for: start over
                return False
            mode = "ab"
        else:  # 200: the server ignored the Range header and sends the whole file
            mode, offset = "wb", 0
        bar.reset(total=resource.size)
        bar.update(offset)
        expected = response.headers.get("Content-Length")
        received = 0
        with open(partial, mode) as f:
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                f.write(block)
                received += len(block)
                bar.update(len(block))
    return expected is None or received == int(expected)


def download(resource: Resource, dest: Path, progress: bool = True, attempts: int = ATTEMPTS) -> Path:
    """Download `resource` to `dest` (resuming `dest.partial`), verify size and MD5, return `dest`.

    An existing `dest` is verified instead. Raises DownloadError when the server keeps failing, or when the
    complete file does not match (the bad file is removed so the next run starts afresh).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        _verify(resource, dest)
        return dest
    partial = dest.with_name(dest.name + ".partial")
    bar = tqdm(total=resource.size, unit="B", unit_scale=True, desc=dest.name, disable=None if progress else True)
    last_error = ""
    try:
        for attempt in range(attempts):
            try:
                if _fetch(resource, partial, bar):
                    break
                last_error = "connection closed before the end of the file"
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code != 429:
                    raise DownloadError(f"{resource.url}: HTTP {exc.code} {exc.reason}") from exc
                last_error = f"HTTP {exc.code} {exc.reason}"
            except (http.client.HTTPException, OSError) as exc:
                last_error = str(getattr(exc, "reason", None) or exc)
            time.sleep(min(30.0, 0.2 * 2**attempt))
        else:
            raise DownloadError(
                f"{resource.url}: gave up after {attempts} attempts ({last_error}); {partial} keeps the bytes "
                "received so far and the next run continues from there"
            )
    finally:
        bar.close()
    try:
        _verify(resource, partial)
    except DownloadError as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{exc}; the file was removed, run again to download it anew") from None
    os.replace(partial, dest)
    return dest


def extract(archive: Path, into: Path) -> None:
    """Unpack a .tar.gz or .zip archive into `into` once (members may not leave `into`)."""
    marker = into / f".{archive.name}.extracted"
    if marker.exists():
        return
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    elif archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                target = (root / member.filename).resolve()
                if root not in target.parents and target != root:
                    raise PrepareError(f"{archive}: member {member.filename!r} would be written outside {into}")
            zf.extractall(into)
    else:
        raise PrepareError(f"{archive}: unknown archive type (expected .tar.gz or .zip)")
    marker.write_text(f"{archive.name}\n")


def fetch_and_extract(resource: Resource, root: Path, progress: bool = True) -> None:
    """Download `resource` into `root` (unless already extracted there) and extract it in `root`."""
    if (root / f".{resource.filename}.extracted").exists():
        return
    extract(download(resource, root / resource.filename, progress=progress), root)

