"""Partial states as bytes: a stable, versioned format that holds data, never code.

The incremental cache keeps states on disk and Dask ships them between processes,
so a state must travel as plain bytes, and bytes read back must never run
anything: no pickle. A blob is::

    b"REPS"                 magic
    u16 (little-endian)     format version, FORMAT_VERSION
    u32                     length of the header
    header                  UTF-8 JSON: {"kind", "meta", "arrays": [[name, dtype, length], ...]}
    array bytes             each array in the header's order, little-endian
    u32                     CRC-32 of everything before it

``meta`` holds ints (exact, any size), strings, booleans, null and lists of them;
every float travels in an array, so it round-trips bit for bit (NaN and ±inf too)
and the JSON stays strict. Array dtypes are limited to ``<f8``, ``<i8`` and ``|u1``
(opaque bytes, e.g. a serialised sketch). Each state class then checks its own
invariants (sorted values, positive counts, matching lengths) in ``_from_fields``.

Example::

    blob = dumps(Moments.of([1.0, 2.0]))
    assert loads(blob) == Moments.of([1.0, 2.0])
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from rulesengine.errors import DataError

MAGIC = b"REPS"
FORMAT_VERSION = 2
DTYPES = ("<f8", "<i8", "|u1")
_HEAD = struct.Struct("<4sHI")  # magic, version, header length
_CRC = struct.Struct("<I")

Meta = dict[str, Any]
Arrays = dict[str, np.ndarray]


class PartialStateError(DataError):
    """A serialised partial state that cannot be read: truncated, corrupt, from a
    newer format, or not a partial state at all. The cache treats it as missing."""


class Serialisable(Protocol):
    kind: ClassVar[str]

    def _fields(self) -> tuple[Meta, Arrays]: ...

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> Any: ...


S = TypeVar("S")
KINDS: dict[str, type[Any]] = {}


def kind(name: str):
    """Register a state class under ``name`` (its tag in the blob)."""

    def register(cls: type[S]) -> type[S]:
        cls.kind = name  # type: ignore[attr-defined]
        KINDS[name] = cls
        return cls

    return register


def dumps(state: Serialisable) -> bytes:
    """The state as bytes (see the module docstring for the layout)."""
    meta, arrays = state._fields()
    listing = []
    chunks = []
    for name, array in arrays.items():
        dtype = np.dtype(array.dtype).newbyteorder("<") if array.dtype.itemsize > 1 else "|u1"
        a = np.ascontiguousarray(array, dtype=dtype)
        if a.dtype.str not in DTYPES:
            raise TypeError(f"array '{name}' has dtype {a.dtype.str}, not one of {DTYPES}")
        listing.append([name, a.dtype.str, int(a.size)])
        chunks.append(a.tobytes())
    header = json.dumps(
        {"kind": state.kind, "meta": meta, "arrays": listing},
        allow_nan=False,
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    body = _HEAD.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(chunks)
    return body + _CRC.pack(zlib.crc32(body))


def loads(blob: bytes) -> Any:
    """A state back from :func:`dumps`; :class:`PartialStateError` for anything
    that is not a well-formed blob of a known kind."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise PartialStateError(f"a partial state is bytes, not {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < _HEAD.size + _CRC.size or blob[:4] != MAGIC:
        raise PartialStateError("not a rulesengine partial state (no REPS header)")
    _magic, version, header_len = _HEAD.unpack_from(blob)
    if version != FORMAT_VERSION:
        raise PartialStateError(
            f"partial state format {version}; this rulesengine reads format {FORMAT_VERSION}"
        )
    body, (crc,) = blob[: -_CRC.size], _CRC.unpack_from(blob, len(blob) - _CRC.size)
    if zlib.crc32(body) != crc:
        raise PartialStateError("partial state is corrupt (checksum mismatch)")
    end = _HEAD.size + header_len
    if end > len(body):
        raise PartialStateError("partial state is truncated (header)")
    try:
        header = json.loads(body[_HEAD.size : end].decode())
        name, meta, listing = header["kind"], header["meta"], header["arrays"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise PartialStateError(f"partial state header is unreadable: {exc}") from None
    cls = KINDS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise PartialStateError(f"unknown partial state kind {name!r}")
    if not isinstance(meta, dict) or not isinstance(listing, list):
        raise PartialStateError("partial state header has the wrong shape")
    arrays: Arrays = {}
    at = end
    for item in listing:
        if not (isinstance(item, list) and len(item) == 3 and item[1] in DTYPES):
            raise PartialStateError(f"partial state array entry {item!r} is not valid")
        field, dtype, size = item
        if not isinstance(size, int) or size < 0 or not isinstance(field, str):
            raise PartialStateError(f"partial state array entry {item!r} is not valid")
        nbytes = size * np.dtype(dtype).itemsize
        if at + nbytes > len(body):
            raise PartialStateError(f"partial state is truncated (array '{field}')")
        arrays[field] = np.frombuffer(body, dtype=dtype, count=size, offset=at).copy()
        at += nbytes
    if at != len(body):
        raise PartialStateError("partial state has trailing bytes")
    try:
        return cls._from_fields(meta, arrays)
    except PartialStateError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise PartialStateError(f"partial state of kind '{name}' is invalid: {exc}") from None


def check(condition: bool, what: str) -> None:
    """Raise :class:`PartialStateError` with ``what`` unless ``condition`` holds;
    the classes' ``_from_fields`` use it for their invariants."""
    if not condition:
        raise PartialStateError(f"partial state is invalid: {what}")


def int_of(meta: Mapping[str, Any], key: str, *, minimum: int | None = 0) -> int:
    """An integer field of ``meta`` (not a bool), at least ``minimum``."""
    value = meta[key]
    check(isinstance(value, int) and not isinstance(value, bool), f"'{key}' is not an integer")
    check(minimum is None or value >= minimum, f"'{key}' is below {minimum}")
    return value


def floats(arrays: Arrays, key: str, size: int | None = None) -> np.ndarray:
    """A float64 array of ``arrays``, of ``size`` entries when given."""
    a = arrays[key]
    check(a.dtype == np.float64, f"'{key}' is not float64")
    check(size is None or a.size == size, f"'{key}' holds {a.size} values, expected {size}")
    return a
