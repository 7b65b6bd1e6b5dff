"""Distributed evaluation on Dask: the same compiled plan, its work on a cluster.

``executor: {type: dask, address: tcp://HOST:PORT}`` in ``engine.yaml`` runs a
window plan through :func:`execute_on`. It is
:func:`~rulesengine.engine.incremental.execute_incremental` with two hooks that
ship work to ``dask.distributed`` workers, while this process (the driver)
lists files, merges partial states and scores:

- **partial queries** (``collect``): the partial states of new or changed
  files, one task per run of ``files_per_task`` files (a file partition). Each
  task is a serialised Polars LazyFrame; the worker deserialises and collects
  it. The driver merges the states with the cached ones.
- **label joins** whose aggregates all have declared decompositions: ``J``
  tasks, task ``j`` reading the requests and the labels whose join keys hash to
  ``j`` (:data:`HASH_SEED`), so no worker holds all labels. Each returns
  partial states per segment (and per-row key); the driver merges the ``J``
  partials into the frame :func:`~rulesengine.engine.execute.execute` gives.
- **every other single-pass query**: one task per query (queries that share a
  source without a per-row key: one task per source, sharing the scan as
  ``execute``'s in-memory batch does). A Polars error in a task re-runs that
  query here with ``execute``, whose message names the culprit file.

The plan's scans carry their paths and ``storage_options``, so workers must see
the same paths (a shared filesystem, or object storage) and run the same
rulesengine and Polars versions. Credentials in ``storage_options`` travel inside
the tasks (see docs/scaling.md, "Distributed evaluation on Dask").

A cluster that cannot be reached within the spec's ``timeout``, does not finish
within it, closes, or loses the workers of a task more often than Dask's retries
allow (``KilledWorker``) turns the affected queries into error strings (the
:class:`~rulesengine.engine.execute.Collected` convention), so their monitors
report ``error``: never partial numbers. Dask is imported only here, and only
when a Dask executor runs (:class:`DaskMissing` names the extra otherwise).

Wiring (one call, in ``evaluate_model``, given the config's executor)::

    plan = plan_model(model, at, profile_cache_dir)
    if executor.type == "dask":  # config.engine.executor
        from rulesengine.engine.distributed import execute_on

        frames = execute_on(executor, plan, model, partials)  # partials None: --no-cache
    elif partials is None:
        frames = execute(plan.queries, model)
    else:
        frames = execute_incremental(plan, model, partials)
    results = score(plan, frames)

The import stays inside the branch, so a local run never loads this module's
imports of Dask (there are none at import time either: Dask is imported when a
Dask executor first runs).

``execute_on`` keeps one client per (address, timeout) across calls (a daemon's
ticks); :func:`close_executors` closes them at shutdown.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from rulesengine.durations import format_duration
from rulesengine.engine.execute import Collected, batches, execute
from rulesengine.engine.frames import Frames
from rulesengine.engine.incremental import Report, execute_incremental
from rulesengine.engine.partial_units import (
    Unit,
    frame_from_states,
    merge_list,
    states_by_row,
    units_of,
)
from rulesengine.engine.plan import ALL, BUCKET, Plan, Query
from rulesengine.engine.sources import POLARS_ERRORS, reason
from rulesengine.errors import RulesEngineError
from rulesengine.masking import mask_url
from rulesengine.monitors.aggs import NotExact
from rulesengine.spec.model import ExecutorSpec, ModelSpec

HASH_SEED = (
    0x5EED  # the label-join partitions: hash(join keys, seed) % J, the same in every process
)
MAX_JOIN_PARTITIONS = 64
TASKS_PER_THREAD = 2  # file partitions per worker thread, for the default files_per_task


class DaskMissing(RulesEngineError):
    """``executor: {type: dask}`` is configured and dask.distributed is not installed."""

    exit_code = 2


class ClusterError(Exception):
    """The cluster could not run (part of) an evaluation; the message says why."""


@dataclass(frozen=True)
class TaskFailed:
    """What a task gave instead of frames: a Polars error on the worker
    (``cluster=False``), or the cluster's failure to run it."""

    why: str
    cluster: bool = False


@dataclass
class JoinReport:
    """One partitioned label join: its frame's sources, the partitions, and the
    label rows each task read (after the label cutoff, before taking the latest
    label per key)."""

    source: str
    labels: str
    partitions: int
    label_rows: list[int] = field(default_factory=list)


@dataclass
class DaskReport:
    """What ran where in one :func:`execute_on` call."""

    partial_tasks: int = 0  # tasks of partial queries (file partitions)
    query_tasks: int = 0  # tasks of single-pass queries
    joins: list[JoinReport] = field(default_factory=list)
    local: list[str] = field(default_factory=list)  # why queries ran on the driver


def _distributed() -> Any:
    """The ``distributed`` module, or :class:`DaskMissing`."""
    try:
        import distributed
    except ImportError:
        raise DaskMissing(
            "executor type dask needs dask.distributed: pip install 'rulesengine[dask]'"
        ) from None
    return distributed


# ------------------------------------------------------------------ on the workers


def collect_task(blobs: list[bytes], engine: str) -> list[pl.DataFrame] | TaskFailed:
    """Run on a worker: deserialise LazyFrames and collect them together (a
    Polars error comes back as :class:`TaskFailed`, not as an exception that
    might not unpickle on the driver)."""
    try:
        lazies = [pl.LazyFrame.deserialize(io.BytesIO(b)) for b in blobs]
        return pl.collect_all(lazies, engine=engine)  # type: ignore[arg-type]
    except POLARS_ERRORS as exc:
        return TaskFailed(reason(exc))


def _blob(lf: pl.LazyFrame) -> bytes:
    return lf.serialize()


# ------------------------------------------------------------------ the driver


class DaskExecutor:
    """A connection to one Dask scheduler, made on first use with the spec's
    timeout (``set_as_default=False``: this process' other code never sees it)
    and kept across evaluations. :meth:`run` evaluates one plan."""

    def __init__(self, spec: ExecutorSpec) -> None:
        assert spec.type == "dask" and spec.address, "a Dask executor needs an address"
        self.spec = spec
        self.address = spec.address
        self.where = f"Dask cluster at {mask_url(spec.address)}"
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self, seconds: float) -> Any:
        """The connected client, connecting within ``seconds`` if needed; raises
        :class:`ClusterError`."""
        distributed = _distributed()
        with self._lock:
            if self._client is not None and self._client.status == "running":
                return self._client
            if self._client is not None:
                self._close()
            wait = max(seconds, 0.1)
            try:
                self._client = distributed.Client(self.address, timeout=wait, set_as_default=False)
            except Exception as exc:  # OSError, TimeoutError, a refused handshake
                within = _seconds(self.spec.timeout.total_seconds())
                raise ClusterError(
                    f"{self.where}: cannot connect within {within} ({type(exc).__name__})"
                ) from None
            return self._client

    def threads(self, seconds: float) -> int:
        """Worker threads in the cluster now (at least 1)."""
        info = self.client(seconds).scheduler_info(n_workers=-1)
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    def run(
        self,
        plan: Plan,
        model: ModelSpec,
        cache_dir: Path,
        *,
        report: Report | None = None,
        dask_report: DaskReport | None = None,
        files_per_task: int | None = None,
        join_partitions: int | None = None,
    ) -> Collected:
        """``plan``'s queries collected as ``execute`` would, the work on the
        cluster (see the module's docstring)."""
        ev = self.evaluation(plan, dask_report, join_partitions)
        if files_per_task is None:
            files_per_task = ev.files_per_task()
        return execute_incremental(
            plan,
            model,
            cache_dir,
            max_bytes=self.spec.cache_bytes,
            report=report,
            collect=ev.collect,
            files_per_task=files_per_task,
            whole=ev.whole,
        )

    def evaluation(
        self,
        plan: Plan,
        dask_report: DaskReport | None = None,
        join_partitions: int | None = None,
    ) -> Evaluation:
        """One evaluation of ``plan``: its deadline starts now, and its hooks
        ``collect`` and ``whole`` are those :meth:`run` gives
        ``execute_incremental``. With ``dask_report``, join tasks also count the
        label rows they read."""
        ev = Evaluation(self, plan, dask_report or DaskReport(), join_partitions)
        ev.count_labels = dask_report is not None
        return ev

    def _close(self) -> None:
        with contextlib.suppress(Exception):  # a dead scheduler's client: nothing to close
            self._client.close(timeout=5)
        self._client = None

    def close(self) -> None:
        """Close the connection (the cluster keeps running)."""
        with self._lock:
            if self._client is not None:
                self._close()


class Evaluation:
    """One evaluation on the cluster: its deadline, and whether the cluster failed
    it (then every query not yet answered is an error)."""

    def __init__(
        self,
        executor: DaskExecutor,
        plan: Plan,
        report: DaskReport,
        join_partitions: int | None,
    ) -> None:
        self.executor, self.plan, self.report = executor, plan, report
        self.timeout = executor.spec.timeout.total_seconds()
        self.deadline = time.monotonic() + self.timeout
        self.join_partitions = join_partitions
        self.broken: str | None = None
        self.count_labels = False  # label rows read per join task (a report asked for them)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def threads(self) -> int | None:
        """The cluster's worker threads; None (and the evaluation broken) if it
        cannot be reached."""
        if self.broken:
            return None
        try:
            return self.executor.threads(self.remaining())
        except ClusterError as exc:
            self.broken = str(exc)
        except Exception as exc:
            self.broken = f"{self.executor.where}: cannot list workers ({type(exc).__name__})"
        return None

    def files_per_task(self) -> int:
        """Enough file partitions to give each worker thread about two tasks."""
        threads = self.threads()
        if threads is None:
            return 1
        most = 0
        for source in self.plan.model.sources.values():
            if source.timestamp is not None and not source.is_remote:
                from rulesengine.engine.partial_scan import current_files

                try:
                    most = max(most, len(current_files(source)))
                except Exception:
                    continue
        return max(1, math.ceil(most / (TASKS_PER_THREAD * threads)))

    # ---------------------------------------------------------- running tasks

    def submit(self, calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
        """Each call as its own task (``pure=False``); per call its result or a
        :class:`TaskFailed`. A cluster failure fails every call not finished and
        marks the evaluation broken."""
        if not calls:
            return []
        if self.broken:
            return [TaskFailed(self.broken, cluster=True)] * len(calls)
        distributed = _distributed()
        where = self.executor.where
        try:
            client = self.executor.client(self.remaining())
            futures = [client.submit(fn, *args, pure=False) for fn, args in calls]
        except ClusterError as exc:
            self.broken = str(exc)
            return [TaskFailed(self.broken, cluster=True)] * len(calls)
        except Exception as exc:
            self.broken = f"{where}: cannot submit tasks ({type(exc).__name__})"
            return [TaskFailed(self.broken, cluster=True)] * len(calls)
        out = [self._outcome(f, distributed) for f in futures]
        if self.broken:
            with contextlib.suppress(Exception):
                client.cancel([f for f in futures if f.status == "pending"])
        return out

    def _outcome(self, future: Any, distributed: Any) -> Any:
        """One task's result, waiting at most until the deadline."""
        where = self.executor.where
        if self.broken and future.status != "finished":  # keep only what has finished
            return TaskFailed(self.broken, cluster=True)
        try:
            return future.result(timeout=max(self.remaining(), 0.01))
        except TimeoutError:
            self.broken = f"{where}: did not finish within {_seconds(self.timeout)}"
        except distributed.KilledWorker:
            why = f"{where}: the workers running this query died too often (KilledWorker)"
            return TaskFailed(why, cluster=True)
        except Exception as exc:  # cancelled, or the connection to the scheduler closed
            self.broken = f"{where}: could not finish ({type(exc).__name__})"
        return TaskFailed(self.broken, cluster=True)

    # ---------------------------------------------------------- the hooks

    def collect(self, lazies: list[pl.LazyFrame]) -> list[pl.DataFrame]:
        """``execute_incremental``'s collector: each partial query a task. Raises
        on any failure, so the incremental executor passes the affected queries
        to :meth:`whole` (which reports a broken cluster as errors)."""
        blobs = [_blob(lf) for lf in lazies]  # a plan that does not serialise: local
        self.report.partial_tasks += len(blobs)
        got = self.submit([(collect_task, ([b], "in-memory")) for b in blobs])
        frames: list[pl.DataFrame] = []
        for g in got:
            if isinstance(g, TaskFailed):
                raise ClusterError(g.why)
            frames.extend(g)
        return frames

    def whole(self, queries: Sequence[Query], model: ModelSpec) -> Collected:
        """``execute_incremental``'s single pass, on the cluster: partitioned
        label joins, one task per other query (or per shared source)."""
        frames: dict[int, pl.DataFrame | str] = {}
        lost: dict[int, dict[str, str]] = {}
        joins: dict[int, _Join] = {}
        for i, q in enumerate(queries):
            join = self.partitioned(q) if q.frame.join is not None else None
            if join is not None:
                joins[i] = join
        rest = [q for i, q in enumerate(queries) if i not in joins]
        index = {id(q): i for i, q in enumerate(queries)}
        groups: list[tuple[list[int], str]] = []
        streaming, in_memory = batches(rest)
        groups += [([index[id(q)]], "streaming") for q in streaming]
        shared: dict[str, list[int]] = {}
        for q in in_memory:
            shared.setdefault(q.frame.source, []).append(index[id(q)])
        groups += [(members, "in-memory") for members in shared.values()]
        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        owners: list[tuple[str, Any]] = []
        local: list[int] = []
        for members, engine in groups:
            try:
                blobs = [_blob(queries[i].lazy) for i in members]  # type: ignore[arg-type]
            except POLARS_ERRORS as exc:  # e.g. a Python function in the plan
                self.report.local.append(f"cannot serialise: {reason(exc)}")
                local += members
                continue
            calls.append((collect_task, (blobs, engine)))
            owners.append(("query", members))
        for i, join in joins.items():
            for call in join.calls:
                calls.append(call)
                owners.append(("join", i))
        self.report.query_tasks += len(calls)
        got = self.submit(calls)
        parts: dict[int, list[Any]] = {}
        for (kind, who), g in zip(owners, got, strict=True):
            if kind == "join":
                parts.setdefault(who, []).append(g)
                continue
            if isinstance(g, TaskFailed) and g.cluster:
                frames.update((i, g.why) for i in who)
            elif isinstance(g, TaskFailed):  # a Polars error: here, for the culprit's name
                local += who
            else:
                frames.update(zip(who, g, strict=True))
        for i, results in parts.items():
            answer = joins[i].finish(results)
            if answer is None:  # not exact when merged, or a Polars error: a single pass
                local.append(i)
            else:
                frames[i] = answer
        if local:
            if self.broken:  # the cluster failed: no query of this evaluation runs half here
                frames.update((i, self.broken) for i in local)
            else:
                here = execute([queries[i] for i in local], model)
                for k, i in enumerate(local):
                    frames[i] = here[k]
                    if here.lost.get(k):
                        lost[i] = dict(here.lost[k])
        return Collected([frames[i] for i in range(len(queries))], lost)

    # ---------------------------------------------------------- label joins

    def partitioned(self, q: Query) -> _Join | None:
        """``q`` over its label join as J tasks by join-key hash, if every
        aggregate has a declared decomposition and the keys' dtypes agree."""
        if q.select:
            return None
        got = units_of(self.plan, -1, q)
        if isinstance(got, str) or got[1]:
            return None
        (unit,) = got[0]
        f = q.frame
        assert f.join is not None
        keys = list(f.join.on)
        frames = self.plan.frames
        left, right = frames.schemas.get(f.source), frames.schemas.get(f.join.source)
        if left is None or right is None:
            return None
        if any(k not in left or k not in right or left[k] != right[k] for k in keys):
            return None
        n = self.join_partitions
        if n is None:
            n = TASKS_PER_THREAD * (self.threads() or 1)
        n = max(1, min(n, MAX_JOIN_PARTITIONS))
        instrument = self.count_labels
        record = JoinReport(f.source, f.join.source, n)
        calls = []
        try:
            for j in range(n):
                lf, labels = _partition(frames, q, keys, n, j)
                blobs = [_blob(_partial(lf, q, unit))]
                if instrument:
                    blobs.append(_blob(labels.select(pl.len())))
                calls.append((collect_task, (blobs, "streaming")))
        except POLARS_ERRORS:
            return None
        self.report.joins.append(record)
        return _Join(q, unit, calls, record)


def _partition(
    frames: Frames, q: Query, keys: list[str], n: int, j: int
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Partition ``j`` of ``n`` of ``q``'s joined frame, and the label rows it
    reads: both sides filtered to the rows whose join keys hash to ``j``."""
    f = q.frame
    assert f.join is not None
    mine = (pl.struct(keys).hash(seed=HASH_SEED) % n) == j
    part = copy.copy(frames)
    part.base = {
        **frames.base,
        f.source: frames.base[f.source].filter(mine),
        f.join.source: frames.base[f.join.source].filter(mine),
    }
    part.frames = {}
    labels = part.base[f.join.source]
    if f.label_cutoff is not None and frames.model.sources[f.join.source].timestamp:
        ts = frames.model.sources[f.join.source].timestamp
        labels = labels.filter(pl.col(ts) <= f.label_cutoff)  # type: ignore[arg-type]
    return part.frame(f), labels


def _partial(lf: pl.LazyFrame, q: Query, unit: Unit) -> pl.LazyFrame:
    """The partial states of ``unit``'s parts per segment (and per-row key)."""
    keys: list[pl.Expr] = [pl.col(c) for c in q.segment_by]
    if q.by is not None:
        keys.append(q.by.alias(BUCKET))
    if not keys:
        keys = [pl.lit(1).alias(ALL)]
    exprs = [e.alias(c) for pid, of in unit.parts.items() for c, e in of.exprs(pid).items()]
    return lf.group_by(keys).agg(exprs)


@dataclass
class _Join:
    """A partitioned label join's tasks, and the merge of their partials."""

    query: Query
    unit: Unit
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]
    record: JoinReport

    def finish(self, results: list[Any]) -> pl.DataFrame | str | None:
        """The frame ``execute`` gives for the query; an error string if the
        cluster failed a partition; None if it needs a single pass."""
        for r in results:
            if isinstance(r, TaskFailed):
                return r.why if r.cluster else None
        q, u = self.query, self.unit
        key_names = [*q.segment_by, *([BUCKET] if q.by is not None else [])]
        found: dict[tuple[Any, ...], dict[str, list[Any]]] = {}
        for r in results:
            if len(r) > 1:
                self.record.label_rows.append(int(r[1].item()))
            for key, states in zip(*states_by_row(u, r[0], key_names), strict=True):
                target = found.setdefault(key, {})
                for pid, state in states.items():
                    target.setdefault(pid, []).append(state)
        try:
            merged = {k: {pid: merge_list(xs) for pid, xs in p.items()} for k, p in found.items()}
            return frame_from_states(u, merged)
        except (NotExact, *POLARS_ERRORS):
            return None


def _seconds(s: float) -> str:
    return format_duration(timedelta(seconds=round(s, 3))) if s >= 1 else f"{s:.2g}s"


# ------------------------------------------------------------------ entry point

_EXECUTORS: dict[tuple[str, float], DaskExecutor] = {}
_EXECUTORS_LOCK = threading.Lock()


def executor_for(spec: ExecutorSpec) -> DaskExecutor:
    """The kept executor of ``spec``'s address and timeout (one client each)."""
    assert spec.address is not None
    key = (spec.address, spec.timeout.total_seconds())
    with _EXECUTORS_LOCK:
        if key not in _EXECUTORS:
            _EXECUTORS[key] = DaskExecutor(spec)
        return _EXECUTORS[key]


def close_executors() -> None:
    """Close every kept client (a daemon's shutdown; the clusters keep running)."""
    with _EXECUTORS_LOCK:
        executors = list(_EXECUTORS.values())
        _EXECUTORS.clear()
    for ex in executors:
        ex.close()


def execute_on(
    spec: ExecutorSpec,
    plan: Plan,
    model: ModelSpec,
    cache_dir: Path | None,
    *,
    report: Report | None = None,
    dask_report: DaskReport | None = None,
    files_per_task: int | None = None,
    join_partitions: int | None = None,
) -> Collected:
    """A drop-in for ``execute_incremental(plan, model, cache_dir)`` that runs
    the work on the Dask cluster of ``spec`` (``config.engine.executor``); see
    the module's docstring for the wiring. ``cache_dir`` None (``run
    --no-cache``) computes every file's partial states and keeps none.
    ``files_per_task`` (default: about two tasks per worker thread for the
    source with the most files) sets the file partitions; ``join_partitions``
    (default: two per worker thread, at most 64) the label-join partitions.
    Raises :class:`DaskMissing` (exit code 2) when dask.distributed is not
    installed; a cluster failure is an error string per affected query, never
    an exception."""
    if spec.type != "dask":
        raise ValueError(f"execute_on runs a dask executor, not {spec.type!r}")
    _distributed()
    kw: dict[str, Any] = {
        "report": report,
        "dask_report": dask_report,
        "files_per_task": files_per_task,
        "join_partitions": join_partitions,
    }
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="rulesengine-partials-") as tmp:
            return executor_for(spec).run(plan, model, Path(tmp), **kw)
    return executor_for(spec).run(plan, model, cache_dir, **kw)
