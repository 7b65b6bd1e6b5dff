"""A model's rows as LazyFrames: each source scanned once (its timestamps
normalised), and per :class:`~rulesengine.monitors.base.FrameKey` the source's
window, filter and label join, built once and shared by every query over it."""

from __future__ import annotations

import copy
from pathlib import Path

import polars as pl

from rulesengine.engine.sources import (
    POLARS_ERRORS,
    NoFiles,
    bad_file,
    matched_nothing,
    reason,
    scan,
)
from rulesengine.engine.timestamps import in_window, with_timestamp
from rulesengine.errors import DataError
from rulesengine.monitors.base import FrameKey
from rulesengine.spec.model import ModelSpec, SourceSpec
from rulesengine.spec.sql import compile_sql


class Frames:
    """LazyFrames per source and per frame key, built once and shared."""

    def __init__(self, model: ModelSpec) -> None:
        self.model = model
        self.base: dict[str, pl.LazyFrame] = {}
        self.schemas: dict[str, pl.Schema] = {}
        self.missing: dict[str, str] = {}  # source → why it has no data
        self.errors: dict[str, str] = {}  # source → why it cannot be read
        self.frames: dict[FrameKey, pl.LazyFrame] = {}
        # labels already deduplicated, per (join, cutoff): see ``labels_once``
        self.known_labels: dict[tuple[object, object], pl.LazyFrame] = {}
        for name in model.sources:
            self._load(name)

    def _load(self, name: str) -> None:
        source: SourceSpec = self.model.sources[name]
        try:
            frame = scan(source)
            raw_schema = frame.collect_schema()
            frame = with_timestamp(frame, source, raw_schema)
            self.schemas[name] = frame.collect_schema()
            self.base[name] = frame
        except NoFiles as exc:
            self.missing[name] = str(exc)
        except DataError as exc:
            self.errors[name] = str(exc)
        except FileNotFoundError:
            self.missing[name] = f"no files match {source.path}"
        except POLARS_ERRORS as exc:
            text = reason(exc)
            # object storage says "not found" for a bucket or prefix with nothing in it
            if matched_nothing(text, *(["not found"] if source.is_remote else [])):
                self.missing[name] = f"no files match {source.path}"
            else:  # name the file, not the glob, when one file alone fails
                self.errors[name] = (
                    bad_file(source) or f"source '{name}': cannot read {source.path}: {text}"
                )

    def problem(self, name: str) -> tuple[str, str] | None:
        """('error'|'no_data', message) if the source cannot give rows."""
        if name in self.errors:
            return "error", self.errors[name]
        if name in self.missing:
            source = self.model.sources[name]
            return ("error" if source.required else "no_data"), self.missing[name]
        return None

    def frame(self, key: FrameKey) -> pl.LazyFrame:
        """The rows of ``key``: its source's window, filter and label join."""
        if key in self.frames:
            return self.frames[key]
        source = self.model.sources[key.source]
        lf = self.base[key.source]
        if source.timestamp and (key.start is not None or key.end is not None):
            lf = lf.filter(in_window(source, key.start, key.end, self.schemas[key.source]))
        if key.filter:
            lf = lf.filter(compile_sql(key.filter).expr.fill_null(False))
        if key.join is not None:
            # the left rows' order, so sums over joined rows add up in one order and
            # a run's numbers are the same to the last bit every time
            lf = lf.join(
                self._labels(key),
                on=list(key.join.on),
                how=key.how,
                suffix="_label",
                nulls_equal=False,
                maintain_order="left",
            )
        self.frames[key] = lf
        return lf

    def _labels(self, key: FrameKey, where: pl.Expr | None = None) -> pl.LazyFrame:
        """The labels joined to ``key``'s rows: the last known one per join key
        (only among the label rows that meet ``where``, if given)."""
        assert key.join is not None
        known = self.known_labels.get((key.join, key.label_cutoff))
        if known is not None and where is None:
            return known
        labels_src = self.model.sources[key.join.source]
        labels = self.base[key.join.source]
        if where is not None:
            labels = labels.filter(where)
        if labels_src.timestamp:
            ts = pl.col(labels_src.timestamp)
            if key.label_cutoff is not None:
                labels = labels.filter(ts <= key.label_cutoff)
            labels = labels.sort(ts, nulls_last=False)
        labels = labels.unique(subset=list(key.join.on), keep="last", maintain_order=False)
        return labels.with_columns(pl.lit(True).alias("__labelled"))


def label_part(on: list[str], parts: int) -> pl.Expr:
    """Which of ``parts`` parts a label row falls in: by a hash of its join key,
    so that all rows of a key share a part."""
    return pl.struct([pl.col(c) for c in on]).hash(0x1AB5) % max(1, parts)


def labels_once(
    frames: Frames,
    key: FrameKey,
    columns: list[str] | None = None,
    parts: int = 1,
    spill: Path | None = None,
    split: list[pl.LazyFrame] | None = None,
) -> pl.LazyFrame:
    """Deduplicate the labels joined to ``key``'s rows once, for executors that
    join batch after batch of request files to the same labels
    (:mod:`rulesengine.engine.incremental`). ``columns``: the label columns kept
    (all when None). ``parts`` > 1 deduplicates the labels in that many parts by
    a hash of the join key, one after another: a key's rows all fall in one part,
    so the result is the same, and the sort behind the deduplication holds one
    part's rows at a time (it peaked at about ten times the label files' size).

    Without ``spill`` the result is kept in memory for every later frame of
    ``frames`` (and of its copies) with the same join and cutoff; with it, each
    part is written to a parquet file in that folder and the result is a scan of
    them (the caller narrows it to each batch's keys: see
    ``partial_run.Run.batch_labels``). ``split``: the label rows already split
    into the ``parts`` (by :func:`label_part`, e.g. written to disk in one pass
    over the files), read in place of a filtered scan of every file per part."""
    assert key.join is not None
    on = list(key.join.on)

    def narrow(lazy: pl.LazyFrame) -> pl.LazyFrame:
        if columns is None:
            return lazy
        have = lazy.collect_schema()
        return lazy.select([c for c in have if c in {*columns, *on, "__labelled"}])

    if parts <= 1 and spill is None:
        done = narrow(frames._labels(key)).collect()
        frames.known_labels[(key.join, key.label_cutoff)] = done.lazy()
        return done.lazy()
    part = label_part(on, parts)
    got = []
    for p in range(max(1, parts)):
        if split is not None:  # this part's rows alone, as the labels' source
            view = copy.copy(frames)
            view.base = {**frames.base, key.join.source: split[p]}
            view.known_labels = {}
            lazy = view._labels(key)
        else:
            lazy = frames._labels(key, part == p if parts > 1 else None)
        df = narrow(lazy).collect()
        if spill is None:
            got.append(df)
            continue
        path = spill / f"part-{p:05d}.parquet"
        # sorted by the key: each row group's key range is in its statistics, so
        # a batch reading a narrow range of keys skips the others
        df.sort(on, nulls_last=True).write_parquet(path, row_group_size=64_000)
        got.append(path)
        del df
    if spill is not None:
        return pl.scan_parquet(got)
    done = pl.concat(got, how="vertical", rechunk=False)
    frames.known_labels[(key.join, key.label_cutoff)] = done.lazy()
    return done.lazy()
