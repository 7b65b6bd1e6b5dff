"""The model side: a prediction logger that writes what a spec's ``sources`` read.

The serving thread only appends a dict to a buffer under a lock; a background
thread encodes the rows as parquet and writes them into hive day folders::

    ROOT/MODEL/requests/dt=2026-11-27/part-20261127T150102Z-<token>-000001.parquet
    ROOT/MODEL/labels/dt=2026-11-29/part-…parquet

which the spec reads with ``path: ROOT/MODEL/requests/**/*.parquet`` (see
docs/logger.md). A file appears whole or not at all: locally it is written to a
hidden ``.part-….parquet.tmp`` (the engine's globs never match a hidden name),
synced and renamed; in object storage it is one object, which appears only when
its upload completes. A crash loses at most the rows not yet flushed.

>>> with ModelLogger("logs", model="fraud-detector") as log:   # doctest: +SKIP
...     rid = log.log(amount=12.5, country="DE", score=0.91)
...     log.log_label(rid, is_fraud=False)
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

log = logging.getLogger("rulesengine.logger")

_OPEN: set[ModelLogger] = set()  # flushed and closed at exit
_OPEN_LOCK = threading.Lock()


class LoggerError(Exception):
    """Rows could not be written (raised by ``flush``/``close``), or the logger is closed."""


@dataclass(frozen=True)
class Flush:
    """One completed flush of one source: the rows written and the files they are in."""

    source: str
    rows: int
    files: tuple[str, ...]


def _now_ns() -> int:
    return time.time_ns()


class ModelLogger:
    """Buffered, thread-safe logging of a model's requests and labels as parquet.

    ``root`` is a local folder or an object-storage URL (``s3://bucket/prefix``,
    ``gs://…``, ``az://…``) with the same ``storage_options`` a source takes.
    Rows go to ``root/model/source/`` (``source`` for :meth:`log`,
    ``label_source`` for :meth:`log_label`), into ``partition_by=YYYY-MM-DD``
    folders by each row's UTC date (``partition_by=None``: no folders). A flush
    happens every ``flush_seconds``, as soon as ``flush_rows`` rows wait, and on
    :meth:`close` (also at interpreter exit).

    ``timestamp`` (default ``ts``) and ``request_id`` are filled in when missing:
    the time of the call and a unique id. A given timestamp may be a
    ``datetime`` (naive means UTC), a ``date``, an ISO-8601 string or epoch
    nanoseconds. ``dtypes`` (column → Polars dtype) casts columns at flush, so
    that a batch of ints is still ``Float64`` and an all-null batch keeps its
    dtype (:meth:`rulesengine.contract.Contract.dtypes` gives them from a spec).
    ``on_flush`` is called in the flushing thread with a :class:`Flush` after
    each source's files are in place.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        model: str,
        source: str = "requests",
        label_source: str = "labels",
        partition_by: str | None = "dt",
        flush_rows: int = 10_000,
        flush_seconds: float = 10.0,
        timestamp: str = "ts",
        storage_options: Mapping[str, str] | None = None,
        dtypes: Mapping[str, pl.DataType | type[pl.DataType]] | None = None,
        compression: str = "zstd",
        max_buffer_rows: int = 1_000_000,
        on_flush: Callable[[Flush], None] | None = None,
    ) -> None:
        for what, name in (("model", model), ("source", source), ("label_source", label_source)):
            if not name or "/" in name or name.startswith(".") or "=" in name:
                raise ValueError(f"{what} {name!r} must be a plain folder name")
        if flush_rows < 1 or flush_seconds <= 0 or max_buffer_rows < flush_rows:
            raise ValueError(
                "need flush_rows >= 1, flush_seconds > 0, max_buffer_rows >= flush_rows"
            )
        text = os.fspath(root)
        self.remote = "://" in text and not text.startswith("file://")
        self.root = (
            text.rstrip("/") if self.remote else os.path.abspath(text.removeprefix("file://"))
        )
        self.model = model
        self.sources = {"log": source, "label": label_source}
        self.partition_by = partition_by
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.timestamp = timestamp
        self.storage_options = dict(storage_options or {})
        self.dtypes = dict(dtypes or {})
        self.compression = compression
        self.max_buffer_rows = max_buffer_rows
        self.on_flush = on_flush
        # a file name unique across processes, hosts and flushes: time, pid, a random
        # token per logger, a sequence number
        self._token = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.urandom(6).hex()}-"
        self._seq = itertools.count(1)
        self._lock = threading.Lock()  # guards the buffers and _closed
        self._io_lock = threading.Lock()  # one flush at a time
        self._rows: list[dict[str, Any]] = []
        self._labels: list[dict[str, Any]] = []
        self._closed = False
        self._stop = False
        self._wake = threading.Event()
        self.rows_written = 0
        self.files_written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"rulesengine-logger-{model}", daemon=True
        )
        self._thread.start()
        with _OPEN_LOCK:
            _OPEN.add(self)

    # ------------------------------------------------------------ the serving thread

    def log(self, request_id: str | None = None, **fields: Any) -> str:
        """Buffer one request (its inputs, prediction, anything); returns its
        ``request_id``. Never does I/O, so it is safe on an event loop."""
        if request_id is None:
            request_id = f"{self._id_prefix}{next(self._ids):x}"
        self._buffer(request_id, fields, labels=False)
        return request_id

    def log_label(self, request_id: str, **fields: Any) -> None:
        """Buffer the ground truth of an earlier request (joined on ``request_id``);
        its timestamp is when the label arrived. Never does I/O."""
        self._buffer(request_id, fields, labels=True)

    def _buffer(self, request_id: str, fields: dict[str, Any], *, labels: bool) -> None:
        """Stamp a row and append it to its buffer (taken under the lock: a flush
        swaps the buffers); wake the writer once ``flush_rows`` rows wait."""
        fields["request_id"] = request_id
        if self.timestamp not in fields:
            fields[self.timestamp] = time.time_ns()
        with self._lock:
            if self._closed:
                raise LoggerError("the logger is closed")
            buf = self._labels if labels else self._rows
            buf.append(fields)
            if len(buf) >= self.flush_rows:
                self._wake.set()

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        with self._lock:
            return len(self._rows) + len(self._labels)

    # ------------------------------------------------------------ flushing

    def flush(self) -> list[Flush]:
        """Write every buffered row now (blocking I/O: call it from a thread, or
        ``await aflush()`` on an event loop). Raises :class:`LoggerError` when rows
        could not be written; they stay buffered for the next attempt."""
        with self._io_lock:
            done, failure = self._flush_locked()
        if failure:
            raise LoggerError(failure)
        return done

    async def aflush(self) -> list[Flush]:
        """:meth:`flush` in the loop's default executor."""
        return await asyncio.get_running_loop().run_in_executor(None, self.flush)

    def close(self) -> None:
        """Stop accepting rows, flush everything, stop the background thread.
        Idempotent. Raises :class:`LoggerError` if rows could not be written."""
        with self._lock:
            already = self._closed
            self._closed = True
        if not already:
            self._stop = True
            self._wake.set()
            if threading.current_thread() is not self._thread:
                self._thread.join()
        with _OPEN_LOCK:
            _OPEN.discard(self)
        if self.pending:
            self.flush()

    async def aclose(self) -> None:
        """:meth:`close` in the loop's default executor."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __enter__(self) -> ModelLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ModelLogger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop:
                break
            with self._io_lock:
                _, failure = self._flush_locked()
            if failure:
                log.warning("%s", failure)

    def _flush_locked(self) -> tuple[list[Flush], str | None]:
        with self._lock:
            batches = [("log", self._rows), ("label", self._labels)]
            self._rows, self._labels = [], []
        done: list[Flush] = []
        failure = None
        for kind, rows in batches:
            if not rows:
                continue
            source = self.sources[kind]
            try:
                files, n = self._write(source, rows), len(rows)
            except _WriteFailed as exc:  # keep the rows not yet written for the next flush
                failure = self._keep(kind, exc.rows, source, exc.cause)
                files, n = exc.files, len(rows) - len(exc.rows)
                if not files:
                    continue
            self.rows_written += n
            self.files_written += len(files)
            flushed = Flush(source, n, tuple(files))
            done.append(flushed)
            if self.on_flush is not None:
                try:
                    self.on_flush(flushed)
                except Exception:
                    log.exception("on_flush callback failed")
        return done, failure

    def _keep(self, kind: str, rows: list[dict[str, Any]], source: str, exc: Exception) -> str:
        from rulesengine.masking import mask_text

        with self._lock:
            current = self._rows if kind == "log" else self._labels
            current[:0] = rows
            over = len(current) - self.max_buffer_rows
            if over > 0:  # storage has been failing for a while: drop the oldest
                del current[:over]
                self.dropped += over
        why = mask_text(f"{type(exc).__name__}: {exc}", self.storage_options.values())
        self.last_error = (
            f"cannot write {len(rows)} row(s) of {self.model}/{source} "
            f"to {mask_text(self.root)}: {why}"
        )
        return self.last_error

    # ------------------------------------------------------------ encoding and files

    def frame(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        """The rows as a DataFrame: ``request_id`` and the timestamp first (UTC,
        microseconds), then the fields in first-seen order, cast to ``dtypes``.
        The rows are left as they were."""
        ts_raw = [r.pop(self.timestamp, None) for r in rows]
        ids = [r.pop("request_id", None) for r in rows]
        try:
            return self._frame(rows, ts_raw, ids)
        finally:
            _restore(rows, self.timestamp, ts_raw, ids)

    def _frame(self, rows: list[dict[str, Any]], ts_raw: list[Any], ids: list[Any]) -> pl.DataFrame:
        ts = _timestamps(ts_raw, self.timestamp)
        try:
            fields = pl.from_dicts(rows, infer_schema_length=None)
        except Exception:  # a column with values of several kinds: keep them as text
            fields = _as_text(rows)
        df = pl.DataFrame([pl.Series("request_id", ids, dtype=pl.String), ts])
        if fields.width:
            df = df.hstack(fields)
        casts = []
        for name, dtype in self.dtypes.items():
            if name in df.columns and df.schema[name] != dtype:
                try:
                    casts.append(df[name].cast(dtype, strict=True))
                except Exception:  # leave it: the schema check reports it honestly
                    continue
        return df.with_columns(casts) if casts else df

    def _write(self, source: str, rows: list[dict[str, Any]]) -> list[str]:
        """Write ``rows``, one file per day; raises :class:`_WriteFailed` with the
        files written and the rows not written (whole, as they were logged)."""
        ts_raw = [r.pop(self.timestamp, None) for r in rows]
        ids = [r.pop("request_id", None) for r in rows]
        written: list[str] = []
        left = list(range(len(rows)))
        try:
            df = self._frame(rows, ts_raw, ids).with_row_index("__row")
            base = f"{self.root}/{self.model}/{source}"
            if self.partition_by is None:
                parts: list[tuple[str, pl.DataFrame]] = [(base, df)]
            else:
                days = df[self.timestamp].dt.date()
                parts = []
                for day in days.unique(maintain_order=True).to_list():
                    mask = days.is_null() if day is None else days == day
                    value = day.isoformat() if day else "__HIVE_DEFAULT_PARTITION__"
                    parts.append((f"{base}/{self.partition_by}={value}", df.filter(mask)))
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            done: set[int] = set()
            for folder, part in parts:
                name = f"part-{stamp}-{self._token}-{next(self._seq):06d}.parquet"
                written.append(self._put(folder, name, part.drop("__row")))
                done.update(part["__row"].to_list())
            return written
        except Exception as exc:
            _restore(rows, self.timestamp, ts_raw, ids)
            if written:
                left = [i for i in left if i not in done]
            raise _WriteFailed(written, [rows[i] for i in left], exc) from exc

    def _put(self, folder: str, name: str, df: pl.DataFrame) -> str:
        target = f"{folder}/{name}"
        if self.remote:
            # one object: it becomes visible only once its upload completes
            df.write_parquet(
                target,
                compression=self.compression,
                storage_options=self.storage_options or None,
            )
            return target
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.tmp")  # hidden: no glob of the engine matches it
        try:
            with open(tmp, "wb") as f:
                df.write_parquet(f, compression=self.compression)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(folder)
        return target


class _WriteFailed(Exception):
    def __init__(self, files: list[str], rows: list[dict[str, Any]], cause: Exception) -> None:
        super().__init__(str(cause))
        self.files, self.rows, self.cause = tuple(files), rows, cause


def _restore(rows: list[dict[str, Any]], timestamp: str, ts: list[Any], ids: list[Any]) -> None:
    for r, t, i in zip(rows, ts, ids, strict=True):
        r["request_id"] = i
        if t is not None:
            r[timestamp] = t


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _timestamps(values: list[Any], name: str) -> pl.Series:
    """The timestamp column as Datetime(us, UTC): epoch nanoseconds (what ``log``
    fills in), datetimes (naive = UTC), dates or ISO-8601 strings."""
    if all(type(v) is int for v in values):
        return (
            pl.Series(name, values, dtype=pl.Int64)
            .cast(pl.Datetime("ns", "UTC"))
            .cast(pl.Datetime("us", "UTC"))
        )
    out: list[datetime | None] = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, datetime):
            out.append(v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))
        elif isinstance(v, date):
            out.append(datetime(v.year, v.month, v.day, tzinfo=UTC))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append(datetime.fromtimestamp(v / 1e9, UTC))
        elif isinstance(v, str):
            try:
                parsed = datetime.fromisoformat(v)
            except ValueError:
                out.append(None)
            else:
                out.append(parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed)
        else:
            out.append(None)
    return pl.Series(name, out, dtype=pl.Datetime("us", "UTC"))


def _as_text(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows whose columns mix kinds of values: each mixed column as text."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns = []
    for n in names:
        values = [r.get(n) for r in rows]
        try:
            columns.append(pl.Series(n, values, strict=True))
        except Exception:
            columns.append(
                pl.Series(n, [None if v is None else str(v) for v in values], dtype=pl.String)
            )
    return pl.DataFrame(columns)


@atexit.register
def _close_all() -> None:
    with _OPEN_LOCK:
        loggers = list(_OPEN)
    for logger in loggers:
        try:
            logger.close()
        except Exception as exc:
            log.error("at exit: %s", exc)
