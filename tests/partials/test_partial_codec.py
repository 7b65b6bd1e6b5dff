"""States as bytes: every kind round-trips bit for bit, and anything that is not a
well-formed blob (corrupt, truncated, foreign, crafted) raises PartialStateError."""

from __future__ import annotations

import json
import pickle
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rulesengine.errors import DataError
from rulesengine.partials import (
    CategoryCounts,
    CellCounts,
    CoMoments,
    Confusion,
    Counts,
    Extremes,
    Moments,
    PartialStateError,
    Sum,
    ValueCounts,
    dumps,
    loads,
)
from rulesengine.partials.codec import FORMAT_VERSION, MAGIC

STATES = {
    "counts": Counts({"rows": 10, "nulls": 2, "huge": 2**80}),
    "sum-int": Sum(-(2**70)),
    "sum-float": Sum(1e16).merge(Sum(1.0)),
    "moments": Moments.of([1.5, float("inf")]),
    "comoments": CoMoments.of([(1.0, 2.0), (None, 3.0), (-0.0, float("nan"))]),
    "extremes-int": Extremes(-(2**62), 2**62),
    "extremes-float": Extremes(float("nan"), -0.0),
    "extremes-empty": Extremes(),
    "cells": CellCounts.of(
        np.array([0, 3, 3, -1]),
        4,
        np.array([1.0, 2.5, 3.0, 0.0]),
        outer=True,
        origin=0.5,
        grid="abc",
    ),
    "cells-plain": CellCounts.of(np.array([1, 1]), 2),
    "categories": CategoryCounts({"a": 3, None: 1, "ü": 2}),
    "confusion": Confusion(1, 2, 3, 4),
    "values": ValueCounts.of([3.0, -1.0, 3.0, float("nan")]),
    "values-exact": ValueCounts.of(np.arange(50.0), exact=True, limit=10),
    "sketch": ValueCounts.of(np.arange(5000.0), limit=100),
}


@pytest.mark.parametrize("name", STATES)
def test_round_trip(name: str) -> None:
    blob = dumps(STATES[name])
    back = loads(blob)
    assert type(back) is type(STATES[name])
    assert dumps(back) == blob  # every field, bit for bit (NaN and -0.0 included)


def test_round_trip_keeps_what_the_state_gives() -> None:
    sketch = loads(dumps(STATES["sketch"]))
    assert sketch.approximate and sketch.n == 5000
    assert sketch.quantile(0.3) == STATES["sketch"].quantile(0.3)
    assert loads(dumps(STATES["sum-float"])).total == 1e16 + 1.0
    assert loads(dumps(STATES["counts"]))["huge"] == 2**80
    assert dict(loads(dumps(STATES["categories"])).counts) == {"a": 3, None: 1, "ü": 2}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(STATES)), st.data())
def test_any_changed_byte_is_refused(name: str, data) -> None:
    blob = bytearray(dumps(STATES[name]))
    at = data.draw(st.integers(0, len(blob) - 1))
    blob[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(PartialStateError):
        loads(bytes(blob))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(STATES)), st.data())
def test_truncated_blobs_are_refused(name: str, data) -> None:
    blob = dumps(STATES[name])
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(PartialStateError):
        loads(blob[:cut])


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"REPS",
        pickle.dumps(Moments.of([1.0])),
        json.dumps({"kind": "moments"}).encode(),
        b"\x00" * 64,
        np.arange(10.0).tobytes(),
    ],
)
def test_foreign_blobs_are_refused(blob: bytes) -> None:
    with pytest.raises(PartialStateError) as info:
        loads(blob)
    assert isinstance(info.value, DataError)  # the CLI's data error (exit 4) if it escapes


def _blob(header: dict, payload: bytes = b"", version: int = FORMAT_VERSION) -> bytes:
    """A blob with a valid checksum around a crafted header and payload."""
    text = json.dumps(header).encode()
    body = struct.pack("<4sHI", MAGIC, version, len(text)) + text + payload
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("header", "payload", "message"),
    [
        ({"kind": "nope", "meta": {}, "arrays": []}, b"", "unknown partial state kind"),
        ({"kind": "counts", "meta": {"counts": {"a": -1}}, "arrays": []}, b"", "below 0"),
        ({"kind": "counts", "meta": {"counts": {"a": 1.5}}, "arrays": []}, b"", "not an integer"),
        (
            {"kind": "moments", "meta": {"n": 1}, "arrays": [["float", "<f8", 3]]},
            np.zeros(3).tobytes(),
            "expected 4",
        ),
        (
            {"kind": "moments", "meta": {"n": 1}, "arrays": [["float", "<f8", 9]]},
            np.zeros(2).tobytes(),
            "truncated",
        ),
        (
            {"kind": "moments", "meta": {"n": 1}, "arrays": [["float", "<f8", 2]]},
            np.zeros(3).tobytes(),
            "trailing bytes",
        ),
        ({"kind": "moments", "meta": {"n": 1}, "arrays": [["float", "O", 2]]}, b"", "not valid"),
        (
            {
                "kind": "values",
                "arrays": [["values", "<f8", 2], ["counts", "<i8", 2]],
                "meta": {"mode": "exact", "exact": False, "limit": 10, "k": 200, "nans": 0, "n": 2},
            },
            np.array([2.0, 1.0]).tobytes() + np.array([1, 1]).tobytes(),
            "not strictly increasing",
        ),
        (
            {
                "kind": "values",
                "arrays": [["values", "<f8", 1], ["counts", "<i8", 1]],
                "meta": {"mode": "exact", "exact": False, "limit": 10, "k": 200, "nans": 0, "n": 5},
            },
            np.array([2.0]).tobytes() + np.array([1]).tobytes(),
            "do not add up",
        ),
        (
            {
                "kind": "values",
                "arrays": [["sketch", "|u1", 16]],
                "meta": {
                    "mode": "sketch",
                    "exact": False,
                    "limit": 10,
                    "k": 200,
                    "nans": 0,
                    "n": 5,
                },
            },
            bytes(range(16)),
            "does not deserialise",
        ),
        (
            {
                "kind": "values",
                "arrays": [["sketch", "|u1", 16]],
                "meta": {"mode": "sketch", "exact": True, "limit": 10, "k": 200, "nans": 0, "n": 5},
            },
            bytes(range(16)),
            "exact state holds a sketch",
        ),
        (
            {
                "kind": "cells",
                "meta": {"n": 2, "grid": "", "sums": False, "outer": False},
                "arrays": [["counts", "<i8", 2], ["origin", "<f8", 1]],
            },
            np.zeros(2, dtype=np.int64).tobytes() + np.zeros(1).tobytes(),
            "wrong size",
        ),
        (
            {"kind": "categories", "meta": {"labels": ["a", "a"], "counts": [1, 2]}, "arrays": []},
            b"",
            "do not pair",
        ),
    ],
)
def test_crafted_blobs_with_valid_checksums_are_checked(header, payload, message) -> None:
    with pytest.raises(PartialStateError, match=message):
        loads(_blob(header, payload))


def test_newer_format_is_named() -> None:
    blob = _blob({"kind": "counts", "meta": {"counts": {}}, "arrays": []}, version=99)
    with pytest.raises(PartialStateError, match="format 99; this rulesengine reads format 2"):
        loads(blob)


def test_a_sketch_from_another_k_is_refused() -> None:
    state = ValueCounts.of(np.arange(300.0), limit=10, k=200)
    meta, arrays = state._fields()
    header = {
        "kind": "values",
        "meta": {**meta, "k": 400},
        "arrays": [["sketch", "|u1", arrays["sketch"].size]],
    }
    with pytest.raises(PartialStateError, match="does not match its header"):
        loads(_blob(header, arrays["sketch"].tobytes()))


def test_not_bytes_is_refused() -> None:
    with pytest.raises(PartialStateError, match="bytes, not str"):
        loads("REPS")  # type: ignore[arg-type]
