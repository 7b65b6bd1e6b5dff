"""The incremental cache on disk: partial states per query, source file and time
bucket (see :mod:`rulesengine.engine.incremental` and docs/scaling.md).

Layout: ``<cache dir>/<model>/<query fingerprint>/<file hash>.part``, one entry
per (query, source file). An entry holds the file's identity (path, size, and
the modification time in ns of a local file or the ETag of an object in object
storage) and the first time bucket it covers completely, then
the sorted 64-bit hashes of its rows' join keys (for a query over a label join,
see :mod:`rulesengine.engine.partial_labels`), then an Arrow IPC table with one
row per (time bucket[, partition date], segment keys[, per-row key]): the keys
and each partial state as bytes (:func:`rulesengine.partials.dumps`: versioned,
checksummed, no pickle), and a CRC-32 of the whole entry. Nothing in an entry is
ever executed. Each entry carries a random token; a label join's ledger names the
tokens it vouches for.

Writes go to a temporary file in the same folder, then ``os.replace``: a reader
sees the old entry or the new one, never half of one. Two processes that compute
the same entry both write a valid one; a reader checks the identity of the
source file against the entry's, so the worst case is a recomputation, never a
merge of states from another version of the file. An entry that cannot be read
(truncated, changed, from another format) counts as missing and is recomputed.

Decoded entries are also kept in memory, keyed by the entry file's own size and
modification time, so a daemon's ticks decode only what changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from rulesengine.partials.codec import PartialStateError, dumps, loads
from rulesengine.partials.scalars import Sum

if TYPE_CHECKING:
    import numpy as np

MAGIC = b"REIC"
FORMAT_VERSION = 3
SUFFIX = ".part"
DEFAULT_MAX_BYTES = 256 * 2**20  # per model
# decoded entries kept in memory, by their size on disk: across a daemon's ticks
# (EntryStore) and within one evaluation (see partial_run.Run.hold)
KEEP_BYTES = 64 * 2**20
TB = "__tb"  # the time bucket column of an entry's table
PDATE = "__pdate"  # the partition date column, with ``partition_date``
_HEAD = struct.Struct("<4sHI")
_CRC = struct.Struct("<I")

# (size, mtime_ns) of a local file; (size, ETag) of an object in object storage.
# The two never compare equal (an int is never a str), and the header names which.
Identity = tuple[int, int | str]
Key = tuple[Any, ...]


@dataclass
class Entry:
    """One source file's partial states for one query: per group (time bucket,
    partition date, keys) its states by part id."""

    path: str
    identity: Identity
    lo: int  # the first time bucket covered completely (rows in earlier ones left out)
    key_schema: dict[str, pl.DataType]  # the key columns (segments, per-row key)
    buckets: list[int] = field(default_factory=list)
    pdates: list[Any] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    token: str = ""  # random, per computation: what a label join's ledger vouches for
    join_keys: np.ndarray | None = None  # sorted unique uint64 hashes of the join keys
    # every bucket's states merged per key, made once when first needed (in memory only)
    collapsed: dict[Key, dict[str, Any]] | None = field(default=None, repr=False)
    nbytes: int = 0  # the entry's size on disk: what keeping it decoded costs, roughly
    released: bool = False  # states and join keys dropped from memory: read them again

    def release(self) -> None:
        """Drop the states and join keys from memory (they stay on disk): the
        entry's buckets, keys, identity and token remain."""
        self.states = []
        self.collapsed = None
        self.join_keys = None
        self.released = True

    def trimmed(self, horizon: int) -> Entry:
        """Without the groups before bucket ``horizon``."""
        keep = [i for i, b in enumerate(self.buckets) if b >= horizon]
        return Entry(
            self.path,
            self.identity,
            max(self.lo, horizon),
            self.key_schema,
            [self.buckets[i] for i in keep],
            [self.pdates[i] for i in keep],
            [self.keys[i] for i in keep],
            [self.states[i] for i in keep],
            self.token,
            self.join_keys,  # a superset of the kept rows' keys: safe
        )


def file_identity(path: str) -> tuple[int, int]:
    """A local file's (size, mtime_ns)."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def entry_path(folder: Path, source_file: str) -> Path:
    digest = hashlib.sha256(source_file.encode()).hexdigest()[:32]
    return folder / f"{digest}{SUFFIX}"


def encode(entry: Entry, part_ids: list[str]) -> bytes:
    """An entry as bytes (see the module's docstring)."""
    columns: dict[str, pl.Series] = {TB: pl.Series(TB, entry.buckets, dtype=pl.Int64)}
    columns[PDATE] = pl.Series(PDATE, entry.pdates)
    for i, (name, dtype) in enumerate(entry.key_schema.items()):
        columns[f"k{i}"] = pl.Series(name, [k[i] for k in entry.keys], dtype=dtype)
    native: dict[str, str] = {}
    for j, pid in enumerate(part_ids):
        got = _native(f"p{j}", [s[pid] for s in entry.states])
        if got is not None:
            native[pid], cols = got
            columns.update(cols)
            continue
        blobs = [dumps(s[pid]) for s in entry.states]
        columns[f"p{j}"] = pl.Series(f"p{j}", blobs, dtype=pl.Binary)
    table = pl.DataFrame({k: s.rename(k) for k, s in columns.items()})
    buf = io.BytesIO()
    table.write_ipc(buf)
    size, version = entry.identity
    header = {
        "path": entry.path,
        "size": size,
        ("etag" if isinstance(version, str) else "mtime_ns"): version,
        "lo": entry.lo,
        "keys": list(entry.key_schema),
        "parts": part_ids,
        "token": entry.token,
        "join_keys": None if entry.join_keys is None else len(entry.join_keys),
        "native": native,
    }
    head = json.dumps(header, sort_keys=True).encode()
    keys = b"" if entry.join_keys is None else entry.join_keys.astype("<u8").tobytes()
    body = _HEAD.pack(MAGIC, FORMAT_VERSION, len(head)) + head + keys + buf.getvalue()
    return body + _CRC.pack(zlib.crc32(body))


def decode(blob: bytes, part_ids: list[str]) -> Entry:
    """An entry from bytes; :class:`PartialStateError` when they are damaged, of
    another format, or hold other parts than ``part_ids``."""
    if len(blob) < _HEAD.size + _CRC.size:
        raise PartialStateError("cache entry truncated")
    body, (crc,) = blob[: -_CRC.size], _CRC.unpack(blob[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise PartialStateError("cache entry checksum mismatch")
    magic, version, n = _HEAD.unpack_from(body)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise PartialStateError("not a cache entry of this format")
    try:
        header = json.loads(body[_HEAD.size : _HEAD.size + n])
        at = _HEAD.size + n
        import numpy as np

        n_keys = header.get("join_keys")
        join_keys = None
        if n_keys is not None:
            join_keys = np.frombuffer(body[at : at + 8 * n_keys], dtype="<u8").astype(np.uint64)
            if len(join_keys) != n_keys or np.any(join_keys[1:] <= join_keys[:-1]):
                raise ValueError("join keys truncated or unsorted")
            at += 8 * n_keys
        table = pl.read_ipc(io.BytesIO(body[at:]))
    except (ValueError, TypeError, OSError, pl.exceptions.PolarsError) as exc:
        raise PartialStateError(f"cache entry unreadable: {type(exc).__name__}") from None
    if header.get("parts") != part_ids:
        raise PartialStateError("cache entry holds other parts")
    try:
        version = str(header["etag"]) if "etag" in header else int(header["mtime_ns"])
        identity: Identity = (int(header["size"]), version)
    except (KeyError, ValueError, TypeError):
        raise PartialStateError("cache entry without a file identity") from None
    names = header["keys"]
    key_cols = [table.get_column(f"k{i}") for i in range(len(names))]
    schema = {name: col.dtype for name, col in zip(names, key_cols, strict=True)}
    keys = list(zip(*(c.to_list() for c in key_cols), strict=True)) if key_cols else []
    if not key_cols:
        keys = [()] * table.height
    states: list[dict[str, Any]] = [{} for _ in range(table.height)]
    native = header.get("native") or {}
    if not isinstance(native, dict):
        raise PartialStateError("cache entry's column kinds unreadable")
    for j, pid in enumerate(part_ids):
        if pid in native:
            values = _from_native(native[pid], table, f"p{j}")
        else:
            values = [loads(blob) for blob in table.get_column(f"p{j}").to_list()]
        for row, value in zip(states, values, strict=True):
            row[pid] = value
    return Entry(
        header["path"],
        identity,
        int(header["lo"]),
        schema,
        table.get_column(TB).to_list(),
        table.get_column(PDATE).to_list(),
        keys,
        states,
        str(header.get("token", "")),
        join_keys,
    )


INT64 = (-(2**63), 2**63 - 1)


def _native(name: str, states: list[Any]) -> tuple[str, dict[str, pl.Series]] | None:
    """Sums as plain columns rather than one blob each: an Int64 column for
    integer sums (within Int64), two Float64 columns (value, compensation) for
    float sums. A histogram's cells are one count each, thousands per entry:
    decoding a blob per count cost 15 s a run on the demo config. None for other
    states, or a mix."""
    if not states or not all(type(s) is Sum for s in states):
        return None
    values = [s.value for s in states]
    if all(type(v) is int and INT64[0] <= v <= INT64[1] for v in values):
        return "sum-int", {name: pl.Series(name, values, dtype=pl.Int64)}
    if all(type(v) is float for v in values):
        errors = [s.error for s in states]
        value = pl.Series(name, values, dtype=pl.Float64)
        return "sum-float", {
            name: value,
            f"{name}e": pl.Series(f"{name}e", errors, dtype=pl.Float64),
        }
    return None


def _from_native(kind: str, table: pl.DataFrame, name: str) -> list[Any]:
    """The states of a plain column (see :func:`_native`)."""
    if kind == "sum-int" and table.schema.get(name) == pl.Int64:
        column = table.get_column(name)
        if column.null_count() == 0:
            return [Sum(v) for v in column.to_list()]
    elif kind == "sum-float" and table.schema.get(name) == pl.Float64:
        value, error = table.get_column(name), table.get_column(f"{name}e", default=None)
        if (
            error is not None
            and error.dtype == pl.Float64
            and value.null_count() == error.null_count() == 0
        ):
            return [Sum(v, e) for v, e in zip(value.to_list(), error.to_list(), strict=True)]
    raise PartialStateError(f"cache entry's column {name} is not a {kind} column")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class EntryStore:
    """Entries on disk, with decoded copies kept in memory (keyed by the entry
    file's size and modification time, so another process's write is seen), the
    most recently used first, up to ``max_bytes`` of entries (by their size on
    disk): the ones used longest ago are dropped from memory beyond that."""

    def __init__(self, max_bytes: int = KEEP_BYTES) -> None:
        self.memory: OrderedDict[str, tuple[Identity, Entry]] = OrderedDict()
        self.max_bytes = max_bytes
        self.bytes = 0
        self.corrupt: list[str] = []  # entry files found damaged (names only)
        self._lock = threading.Lock()  # the daemon's models evaluate in threads

    def _keep(self, name: str, own: Identity, entry: Entry) -> None:
        with self._lock:
            old = self.memory.pop(name, None)
            if old is not None:
                self.bytes -= old[1].nbytes
            self.memory[name] = (own, entry)
            self.bytes += entry.nbytes
            while self.bytes > self.max_bytes and len(self.memory) > 1:
                _, (_, gone) = self.memory.popitem(last=False)
                self.bytes -= gone.nbytes

    def drop(self, path: Path) -> None:
        """Forget the decoded copy of ``path`` (it stays on disk)."""
        with self._lock:
            old = self.memory.pop(str(path), None)
            if old is not None:
                self.bytes -= old[1].nbytes

    def load(self, path: Path, part_ids: list[str]) -> Entry | None:
        try:
            own = file_identity(str(path))
        except OSError:
            self.drop(path)
            return None
        kept = self.memory.get(str(path))
        if kept is not None and kept[0] == own and not kept[1].released:
            with self._lock:
                if str(path) in self.memory:
                    self.memory.move_to_end(str(path))
            return kept[1]
        entry = self.read(path, part_ids)
        if entry is None:
            self.drop(path)
            return None
        entry.nbytes = own[0]
        self._keep(str(path), own, entry)
        return entry

    def read(self, path: Path, part_ids: list[str]) -> Entry | None:
        """``path`` decoded from disk, not kept in memory; None when it is gone or
        damaged (a damaged one is named in ``corrupt``)."""
        try:
            return decode(path.read_bytes(), part_ids)
        except FileNotFoundError:
            return None
        except (OSError, PartialStateError):
            self.corrupt.append(path.name)
            return None

    def save(self, path: Path, entry: Entry, part_ids: list[str]) -> int:
        """Write ``entry``; the bytes written."""
        data = encode(entry, part_ids)
        write_atomic(path, data)
        entry.nbytes = len(data)
        try:
            self._keep(str(path), file_identity(str(path)), entry)
        except OSError:
            self.drop(path)
        return len(data)

    def forget(self, keep: set[str], under: Path) -> None:
        """Drop decoded entries below ``under`` that are not in ``keep``."""
        prefix = str(under)
        # a copy of the keys taken at once: the daemon's models evaluate in threads
        for name in [k for k in list(self.memory) if k.startswith(prefix) and k not in keep]:
            self.drop(Path(name))


@dataclass
class Bounded:
    """What :func:`enforce_bound` did: the entries deleted, the bytes left, and
    of this evaluation's own entries (``used``), their bytes and how many were
    deleted (the bound is below what its window needs)."""

    deleted: list[Path]
    total: int
    used_bytes: int
    used_deleted: int


def enforce_bound(model_dir: Path, max_bytes: int, used: set[str]) -> Bounded:
    """Delete entries of ``model_dir`` until it holds at most ``max_bytes``:
    first those not used by this evaluation (another configuration's), oldest
    first, then the used ones, oldest first."""
    files: list[tuple[bool, int, int, str]] = []
    total = 0
    folders = [f for f in os.scandir(model_dir) if f.is_dir()] if model_dir.is_dir() else []
    for folder in folders:
        for item in os.scandir(folder.path):
            if not item.name.endswith(SUFFIX) or item.name.startswith(".tmp-"):
                continue
            try:
                st = item.stat()
            except OSError:
                continue
            total += st.st_size
            files.append((item.path in used, st.st_mtime_ns, st.st_size, item.path))
    deleted = []
    used_deleted = 0
    for in_use, _mtime, size, name in sorted(files):
        if total <= max_bytes:
            break
        with contextlib.suppress(OSError):
            os.unlink(name)
            total -= size
            deleted.append(Path(name))
            used_deleted += in_use
    for folder in folders:
        with contextlib.suppress(OSError):
            os.rmdir(folder.path)  # only succeeds when empty
    used_bytes = sum(size for in_use, _mtime, size, _name in files if in_use)
    return Bounded(deleted, total, used_bytes, used_deleted)


def state_columns(row: Mapping[str, Any], parts: Mapping[str, Any]) -> dict[str, Any]:
    """One result row's partial states by part id (``parts``: id → ``*Of``)."""
    return {pid: of.state(row, pid) for pid, of in parts.items()}
