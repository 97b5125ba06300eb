"""Augmentation banks as int16 in one memory-mapped file per node, built once and shared through the page cache.

A bank file is `<cache>/banks/<key>.bank`: a magic tag, named arrays (each 64-byte aligned), then a JSON header
(key, metadata, array table, file size, digest), its length and the magic tag again. `open_or_build` builds it
once per node: under an exclusive `flock` on `<key>.lock` it writes a temporary file and renames it into place,
so concurrent trials and ranks wait for one build and a killed build leaves no half-written bank. Every process
then maps it read-only; the kernel's page cache is the one shared copy. A file whose header, size or sampled
digest does not match is rebuilt, never trusted. The digest covers the header and 64 blocks of 4 KiB spread over
the arrays (opening stays fast); it catches truncation and damaged headers, not every flipped payload byte.

Samples are int16 with one float32 dequantisation factor: `PCM16_SCALE` (exactly libsndfile's int16 -> float
mapping) whenever every value is k / 32768, which makes 16-bit PCM sources lossless; else peak / 32767, so a
float or 24-bit source is rounded to 16 bits without clipping.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np

BYTES_PER_SAMPLE = 2
"""Banks hold int16 samples: the host memory (page cache) a bank costs per sample, once per node."""
MAGIC = b"MSBANK\x00\x01"
FORMAT_VERSION = 1
PCM16_SCALE = 1.0 / 32768
"""libsndfile's int16 -> float32 factor: 16-bit PCM decoded as float is exactly k * PCM16_SCALE."""
_ALIGN = 64
_TAIL = 8 + len(MAGIC)  # header length (uint64, little endian) + magic
_DIGEST_BLOCKS, _DIGEST_BLOCK_BYTES = 64, 4096


class BankFileError(ValueError):
    """A bank file that cannot be trusted, or a cache folder a bank cannot be written to."""


def is_pcm16(x: np.ndarray) -> bool:
    """Whether every float sample is k / 32768 with k an int16 (then int16 storage is lossless)."""
    k = np.asarray(x, dtype=np.float64) * 32768.0
    return bool(np.all(k == np.rint(k)) and (k.size == 0 or (k.min() >= -32768 and k.max() <= 32767)))


def int16_scale(lossless: bool, peak: float) -> float:
    """The dequantisation factor: PCM16_SCALE when lossless, else peak / 32767 (float32-exact)."""
    scale = PCM16_SCALE if lossless or peak <= 0 else peak / 32767.0
    return float(np.float32(scale))


def to_int16(x: np.ndarray, scale: float) -> np.ndarray:
    """Float samples as the nearest int16 multiples of `scale` (clipped to the int16 range)."""
    k = np.rint(np.asarray(x, dtype=np.float64) / scale)
    return np.clip(k, -32768, 32767).astype(np.int16)


def cache_key(kind: str, root: Path, files: list[Path], **params: Any) -> str:
    """`<kind>-<family>-<listing>`: a hash of the folder and `params` (one family per bank a run can ask for),
    then a hash of the format version and the folder's files' names, sizes and mtimes."""
    listing = []
    for f in files:
        st = f.stat()
        listing.append([f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    family = json.dumps({"root": str(root.resolve()), **params}, sort_keys=True)
    content = json.dumps({"format": FORMAT_VERSION, "files": listing})
    return f"{kind}-{_hash(family, 12)}-{_hash(content, 20)}"


def _hash(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


@dataclass(frozen=True)
class BankFile:
    """An opened bank file: its metadata and read-only arrays mapped from it (no copy)."""

    path: Path
    meta: dict
    arrays: dict[str, np.ndarray]


class BankWriter:
    """Appends named arrays to a bank file being built; `finish` writes the header."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self._f.write(MAGIC)
        self.table: dict[str, dict] = {}

    def add(self, name: str, chunks: Iterable[np.ndarray], dtype: str | np.dtype, shape_tail: tuple = ()) -> int:
        """Write one array from consecutive chunks along its first axis; returns its first-axis length."""
        dtype = np.dtype(dtype)
        offset = self._pad()
        rows = 0
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            if chunk.shape[1:] != tuple(shape_tail):
                raise ValueError(f"array {name}: chunk shape {chunk.shape} does not end in {shape_tail}")
            self._f.write(chunk.tobytes())
            rows += chunk.shape[0]
        self.table[name] = {"dtype": dtype.str, "shape": [rows, *shape_tail], "offset": offset}
        return rows

    def _pad(self) -> int:
        position = self._f.tell()
        aligned = -(-position // _ALIGN) * _ALIGN
        self._f.write(b"\0" * (aligned - position))
        return aligned

    def finish(self, key: str, meta: dict) -> None:
        """Write the header (with the digest of what was written) and the tail."""
        header = {"format": FORMAT_VERSION, "key": key, "meta": meta, "arrays": self.table}
        end = self._pad()
        self._f.flush()
        raw = np.memmap(self._f.name, np.uint8, mode="r", shape=(end,))
        header["digest"] = _digest(header, raw, self.table)
        del raw
        data = json.dumps(header, sort_keys=True).encode()
        self._f.write(data + len(data).to_bytes(8, "little") + MAGIC)


def _digest(header: dict, raw: np.ndarray, table: dict) -> str:
    """blake2b of the header (without its digest) and up to 64 blocks of 4 KiB spread over the arrays."""
    h = hashlib.blake2b(json.dumps({k: v for k, v in header.items() if k != "digest"}, sort_keys=True).encode())
    for name in sorted(table):
        entry = table[name]
        start = entry["offset"]
        nbytes = int(np.prod(entry["shape"], dtype=np.int64)) * np.dtype(entry["dtype"]).itemsize
        if start + nbytes > raw.size:
            raise BankFileError(f"array {name} ends at byte {start + nbytes}, past the payload ({raw.size} bytes)")
        blocks = min(_DIGEST_BLOCKS, -(-nbytes // _DIGEST_BLOCK_BYTES))
        for i in range(blocks):
            at = start + (nbytes - _DIGEST_BLOCK_BYTES) * i // max(1, blocks - 1) if nbytes > _DIGEST_BLOCK_BYTES else start
            h.update(raw[at : at + min(_DIGEST_BLOCK_BYTES, nbytes)].tobytes())
    return h.hexdigest()


def read_bank(path: Path, key: str) -> BankFile:
    """Map an existing bank file read-only; BankFileError when it is not a complete bank of `key`."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if size < len(MAGIC) + _TAIL or head != MAGIC:
            raise BankFileError(f"{path}: not a bank file (bad magic or too short)")
        f.seek(size - _TAIL)
        tail = f.read(_TAIL)
        length = int.from_bytes(tail[:8], "little")
        if tail[8:] != MAGIC or length > size - len(MAGIC) - _TAIL:
            raise BankFileError(f"{path}: truncated or damaged (bad tail)")
        f.seek(size - _TAIL - length)
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BankFileError(f"{path}: damaged header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION or header.get("key") != key:
        raise BankFileError(f"{path}: header is not format {FORMAT_VERSION} for key {key}")
    payload = size - _TAIL - length
    raw = np.memmap(path, np.uint8, mode="r", shape=(payload,))
    try:
        if _digest(header, raw, header["arrays"]) != header.get("digest"):
            raise BankFileError(f"{path}: digest mismatch (damaged payload or header)")
        arrays = {}
        for name, entry in header["arrays"].items():
            dtype, shape, start = np.dtype(entry["dtype"]), tuple(entry["shape"]), entry["offset"]
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            arrays[name] = raw[start : start + nbytes].view(dtype).reshape(shape)
    except (KeyError, TypeError) as exc:
        raise BankFileError(f"{path}: damaged header ({exc!r})") from None
    return BankFile(path, header["meta"], arrays)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created if needed) for the duration of the block."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_or_build(folder: Path, key: str, build: Callable[[BankWriter], dict]) -> BankFile:
    """The bank `<folder>/<key>.bank`, built by `build` (which adds the arrays and returns the metadata) when it
    is missing or cannot be trusted; at most one process per key builds it at a time. A build removes the banks
    of the same family (the key up to its last '-': the same folder and parameters) that it replaces."""
    path = folder / f"{key}.bank"
    with contextlib.suppress(OSError, BankFileError):  # missing, or to be rebuilt
        return read_bank(path, key)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder / f"{key}.lock"):
            with contextlib.suppress(OSError, BankFileError):
                return read_bank(path, key)  # built by another process while this one waited
            for stale in folder.glob(f".{key}.*.tmp"):  # left by a killed build (we hold the lock)
                stale.unlink(missing_ok=True)
            tmp = folder / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
            try:
                with open(tmp, "w+b") as f:
                    writer = BankWriter(f)
                    meta = build(writer)
                    writer.finish(key, meta)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            for old in folder.glob(f"{key.rpartition('-')[0]}-*.bank"):  # the same folder and parameters, before it changed
                if old != path:
                    old.unlink(missing_ok=True)  # processes mapping it keep their pages until they close
    except OSError as exc:
        raise BankFileError(f"cannot build the augmentation bank {path} ({exc}): make its folder writable, or "
                            "point MARGIN_STUDY_CACHE at a writable node-local folder") from None
    return read_bank(path, key)
