"""Delayed labels in the incremental cache: which cached partials a change of the
labels reaches (see :mod:`rulesengine.engine.incremental` and docs/scaling.md).

A query over a label join (``join: {source: labels, on: request_id}``) joins each
window row to the last label known at the cutoff for its key. So a cached
partial of request file F stays right as long as, for every join key of F's
rows, the set of label rows admitted for that key is the same. Between two
*label versions* (the cutoff and the label files' identities) the keys whose
admitted rows may differ are:

* the keys of a new label file's rows admitted now (timestamp ≤ the cutoff);
* all keys of a rewritten or deleted label file's old content (kept as a
  summary: its old rows are gone, so their times are not looked at);
* the keys of an unchanged file's rows whose timestamp lies between the old and
  the new cutoff (admitted or dropped by the move).

An entry's request file is computed again when its join keys meet these keys;
every other entry is kept. Keys are compared as 64-bit hashes of the key columns
cast to the join's common dtypes: equal keys hash alike, and a collision costs a
recomputation, never a wrong merge.

Per query folder, a **ledger** holds the label version its entries were checked
against and, per request file, the token of the entry it vouches for; an entry
whose token is not vouched for (written by another process, or no ledger) is
computed again. Per label source a **summary** of each label file (the sorted
hashes of its admitted-able rows, the first and last label time) lives in
``labels-<fingerprint>/``, with an index of the files summarised.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from rulesengine.engine.partial_cache import SUFFIX, Identity, write_atomic
from rulesengine.engine.partial_scan import (
    BATCH_BYTES,
    ScanShape,
    current_files,
    scan_shape,
    size_batches,
    subset_scan,
)
from rulesengine.engine.sources import POLARS_ERRORS
from rulesengine.spec.model import SourceSpec

if TYPE_CHECKING:
    import numpy as np

SEED = 0x5EED_1AB5
HASH = "__key_hash"
TS = "__label_us"
LEDGER = "ledger.json"
INDEX = "index.json"
_MAGIC = b"REIL"
_HEAD = struct.Struct("<4sHQ")
# label rows (16 bytes each) kept in memory per call for a moved cutoff: about 64 MB
ROWS_KEPT = 4_000_000


def key_dtypes(
    left: pl.Schema | None, right: pl.Schema | None, on: tuple[str, ...]
) -> dict[str, pl.DataType] | None:
    """The dtype each join key is compared in (the supertype of both sides'), or
    None if a side lacks a key or the dtypes have no common type."""
    if left is None or right is None:
        return None
    out: dict[str, pl.DataType] = {}
    for c in on:
        if c not in left or c not in right:
            return None
        try:
            both = [pl.DataFrame(schema={c: left[c]}), pl.DataFrame(schema={c: right[c]})]
            out[c] = pl.concat(both, how="vertical_relaxed").schema[c]
        except POLARS_ERRORS:
            return None
    return out


def key_hash(dtypes: dict[str, pl.DataType]) -> pl.Expr:
    """A row's join key as a 64-bit hash (the same on both sides of the join)."""
    return pl.struct([pl.col(c).cast(t) for c, t in dtypes.items()]).hash(SEED).alias(HASH)


def has_key(dtypes: dict[str, pl.DataType]) -> pl.Expr:
    """Rows whose key can match: null keys never do."""
    return pl.all_horizontal([pl.col(c).is_not_null() for c in dtypes])


def unique_sorted(values: Any) -> np.ndarray:
    """The distinct hashes, sorted: one sort and a pass over its runs (NumPy 2's
    ``np.unique`` hashes first, several times slower on millions of keys)."""
    import numpy as np

    out = np.sort(np.asarray(values, dtype=np.uint64))
    if out.size < 2:
        return out
    return out[np.concatenate(([True], out[1:] != out[:-1]))]


def meets(a: np.ndarray | None, b: np.ndarray) -> bool:
    """Whether two sorted unique hash arrays share a value (None: unknown, so yes)."""
    import numpy as np

    if a is None:
        return True
    if not len(a) or not len(b):
        return False
    small, big = (a, b) if len(a) < len(b) else (b, a)
    at = np.searchsorted(big, small)
    at[at == len(big)] = 0
    return bool(np.any(big[at] == small))


@dataclass(frozen=True)
class LabelFile:
    """A label file as summarised: identity, first and last label time (µs since
    the epoch; None without timestamps or when every time is null). ``mtime_ns``
    is an object's ETag in object storage (see :data:`Identity`)."""

    size: int
    mtime_ns: int | str
    lo: int | None
    hi: int | None

    @property
    def identity(self) -> Identity:
        return self.size, self.mtime_ns


@dataclass
class Version:
    """What the labels were: the cutoff (µs; None without label timestamps) and
    the label files."""

    cutoff: int | None
    files: dict[str, LabelFile] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        files = {p: [f.size, f.mtime_ns, f.lo, f.hi] for p, f in self.files.items()}
        return {"cutoff": self.cutoff, "files": files}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Version:
        files = {p: LabelFile(*v) for p, v in data["files"].items()}
        return Version(data["cutoff"], files)


@dataclass
class Ledger:
    """A query folder's label version and the entry tokens checked against it."""

    version: Version
    claims: dict[str, str]


def read_ledger(folder: Path) -> Ledger | None:
    try:
        data = json.loads((folder / LEDGER).read_text(encoding="utf-8"))
        return Ledger(Version.from_json(data["version"]), dict(data["claims"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_ledger(folder: Path, ledger: Ledger) -> None:
    data = {"version": ledger.version.to_json(), "claims": ledger.claims}
    write_atomic(folder / LEDGER, json.dumps(data, sort_keys=True).encode())


def _summary_path(folder: Path, path: str, ident: Identity) -> Path:
    digest = hashlib.sha256(f"{path}\0{ident[0]}\0{ident[1]}".encode()).hexdigest()[:32]
    return folder / f"{digest}{SUFFIX}"


def _encode(hashes: np.ndarray) -> bytes:
    body = _HEAD.pack(_MAGIC, 1, len(hashes)) + hashes.astype("<u8").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def _decode(blob: bytes) -> np.ndarray | None:
    import numpy as np

    if len(blob) < _HEAD.size + 4:
        return None
    body, (crc,) = blob[:-4], struct.unpack("<I", blob[-4:])
    if zlib.crc32(body) != crc:
        return None
    magic, version, n = _HEAD.unpack_from(body)
    if magic != _MAGIC or version != 1 or len(body) != _HEAD.size + 8 * n:
        return None
    return np.frombuffer(body[_HEAD.size :], dtype="<u8").astype(np.uint64)


class LabelWatch:
    """One label source (with the join's key dtypes) during one call: its files
    now, their summaries, and the keys changed since an earlier version."""

    def __init__(self, spec: SourceSpec, dtypes: dict[str, pl.DataType], folder: Path) -> None:
        self.spec, self.dtypes, self.folder = spec, dtypes, folder
        self.timed = spec.timestamp is not None
        self.files: dict[str, LabelFile] | None = None
        # rows of label files read in this call, kept while they fit ROWS_KEPT (a
        # file left out is read again if a moved cutoff needs its rows' times)
        self.rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.read: list[str] = []  # label files read in this call (for the report)
        self.written = 0
        self._shape: ScanShape | None = None

    def _lazy(self, files: list[str]) -> pl.LazyFrame:
        """Each row's key hash and label time (µs), for rows whose key and time can
        be admitted."""
        if self._shape is None:  # once per call: it reads every file's footer
            self._shape = scan_shape(self.spec)
        lf = subset_scan(self.spec, files, self._shape).filter(has_key(self.dtypes))
        cols = [key_hash(self.dtypes)]
        if self.timed:
            ts = pl.col(self.spec.timestamp)  # type: ignore[arg-type]
            lf = lf.filter(ts.is_not_null())
            cols.append(ts.dt.epoch("us").alias(TS))
        else:
            cols.append(pl.lit(0, dtype=pl.Int64).alias(TS))
        return lf.select(cols)

    def current(self) -> dict[str, LabelFile]:
        """The label files now, each summarised (new ones read once, in one scan)."""
        if self.files is not None:
            return self.files
        import numpy as np

        now = current_files(self.spec)
        try:
            index = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
            known = {p: LabelFile(*v) for p, v in index.items()}
        except (OSError, ValueError, TypeError):
            known = {}
        files: dict[str, LabelFile] = {}
        new = []
        for path, ident in now.items():
            info = known.get(path)
            summarised = info is not None and info.identity == ident
            if summarised and _summary_path(self.folder, path, ident).exists():
                files[path] = info  # type: ignore[assignment]
                continue
            new.append(path)
        if new:
            self.read = sorted(new)
            kept = 0
            # file by file, in batches of at most BATCH_BYTES on disk: one scan of
            # every new file at once held each row's path and key (1.2 GB at 20M
            # label rows; see docs/scaling.md, "Memory at scale")
            for batch in size_batches(new, now, BATCH_BYTES):
                got = pl.collect_all([self._lazy([p]) for p in batch], engine="in-memory")
                for path, part in zip(batch, got, strict=True):
                    h = part.get_column(HASH).to_numpy().astype(np.uint64)
                    t = part.get_column(TS).to_numpy().astype(np.int64)
                    if kept + len(h) <= ROWS_KEPT:
                        self.rows[path] = (h, t)
                        kept += len(h)
                    lo = int(t.min()) if self.timed and len(t) else None
                    hi = int(t.max()) if self.timed and len(t) else None
                    files[path] = LabelFile(*now[path], lo, hi)
                    data = _encode(unique_sorted(h))
                    write_atomic(_summary_path(self.folder, path, now[path]), data)
                    self.written += len(data)
                del got
            index = {p: [f.size, f.mtime_ns, f.lo, f.hi] for p, f in files.items()}
            write_atomic(self.folder / INDEX, json.dumps(index, sort_keys=True).encode())
        self.files = files
        return files

    def summary(self, path: str, info: LabelFile) -> np.ndarray | None:
        """Every key hash of a label file as it was summarised (None: not kept)."""
        if path in self.rows and self.files and self.files[path] == info:
            return unique_sorted(self.rows[path][0])
        try:
            return _decode(_summary_path(self.folder, path, info.identity).read_bytes())
        except OSError:
            return None

    def touched(self, before: Version | None, now: Version) -> np.ndarray | None:
        """The key hashes whose admitted labels may differ between ``before`` and
        ``now`` (sorted, unique); None when that cannot be told (no earlier
        version, a summary lost): then every key counts as touched."""
        import numpy as np

        if before is None or self.timed != (now.cutoff is not None):
            return None
        if self.timed and before.cutoff is None:
            return None
        parts: list[np.ndarray] = []
        scans: list[tuple[str, int | None, int | None]] = []

        def admitted(path: str, info: LabelFile, lo: int | None, hi: int | None) -> bool:
            """Add the hashes of ``path``'s rows with lo < time <= hi; False if lost."""
            if self.timed:
                if info.lo is None or info.hi is None:
                    return True
                if (hi is not None and info.lo > hi) or (lo is not None and info.hi <= lo):
                    return True
                inside = (lo is None or info.lo > lo) and (hi is None or info.hi <= hi)
                if not inside:
                    if path in self.rows and self.files and self.files.get(path) == info:
                        h, t = self.rows[path]
                        keep = np.ones(len(t), dtype=bool)
                        if lo is not None:
                            keep &= t > lo
                        if hi is not None:
                            keep &= t <= hi
                        parts.append(h[keep])
                    else:
                        scans.append((path, lo, hi))
                    return True
            whole = self.summary(path, info)
            if whole is None:
                return False
            parts.append(whole)
            return True

        for path, info in now.files.items():
            old = before.files.get(path)
            if old is not None and old.identity == info.identity:
                if self.timed and before.cutoff != now.cutoff:
                    lo, hi = sorted((before.cutoff, now.cutoff))  # type: ignore[type-var]
                    if not admitted(path, info, lo, hi):
                        return None
                continue
            if not admitted(path, info, None, now.cutoff):  # new or rewritten: now's rows
                return None
        for path, old in before.files.items():
            info = now.files.get(path)
            if info is not None and info.identity == old.identity:
                continue
            # gone or rewritten: the old rows are not there to look at; all their keys
            if self.timed and (old.lo is None or old.lo > before.cutoff):  # type: ignore[operator]
                continue
            whole = self.summary(path, old)
            if whole is None:
                return None
            parts.append(whole)
        if scans:
            lazies = []
            for path, lo, hi in scans:
                t = pl.col(TS)
                cond = pl.lit(True)
                if lo is not None:
                    cond &= t > lo
                if hi is not None:
                    cond &= t <= hi
                lazies.append(self._lazy([path]).filter(cond).select(HASH).unique())
            try:
                got = pl.collect_all(lazies, engine="in-memory")
            except POLARS_ERRORS:
                return None
            self.read = sorted({*self.read, *(p for p, _, _ in scans)})
            parts += [df.get_column(HASH).to_numpy() for df in got]
        if not parts:
            return np.zeros(0, dtype=np.uint64)
        return unique_sorted(np.concatenate(parts))

    def in_use(self) -> set[str]:
        """The summary files of this call's label files (kept by the cache's bound
        as the entries are, and counted with them)."""
        if self.files is None:
            return set()
        return {str(_summary_path(self.folder, p, f.identity)) for p, f in self.files.items()}

    def sweep(self) -> None:
        """Delete the summaries of label files that are gone or were rewritten."""
        if self.files is None or not self.folder.is_dir():
            return
        keep = {_summary_path(self.folder, p, f.identity).name for p, f in self.files.items()}
        for item in self.folder.glob(f"*{SUFFIX}"):
            if item.name not in keep:
                with contextlib.suppress(OSError):
                    item.unlink()
