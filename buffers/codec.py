"""msgpack + lz4 codec for segments and other nested data.

Arrays travel as a msgpack ext type holding (dtype string, shape, raw C-order bytes), so any
numeric or bool array round-trips bit-exact: NaN payloads, -0.0, byte order, 0-d and empty shapes.

    blob = encode({"obs": np.zeros((3, 4), np.float32), "tag": "x"})
    seg = decode_segment(encode_segment(seg))
"""

from __future__ import annotations

import struct
from typing import Any, cast

import lz4.frame
import msgpack
import numpy as np

from buffers.schema import META_FIELDS, NO_IMAGE, STEP_FIELDS, Segment

#: first byte of every payload; bump when the layout changes.
FORMAT_VERSION = 1
EXT_NDARRAY = 1
EXT_NPSCALAR = 2
#: numpy dtype kinds that round-trip as raw bytes: bool, signed, unsigned, float, complex.
ARRAY_KINDS = "biufc"
MAX_DECODED = 1 << 30  # the most a payload may inflate to: a hostile 64 MB frame could otherwise claim terabytes
SEGMENT_TAG = "segment/2"
V1_TAG = "segment/1"  # before camera images: read as a segment whose steps have no image


class CodecError(ValueError):
    """A payload could not be encoded or decoded; the message says what and where."""


class TooLarge(CodecError):
    """A payload that would inflate past what its reader allows."""


def _pack_array(arr: np.ndarray) -> bytes:
    if arr.dtype.kind not in ARRAY_KINDS:
        raise CodecError(f"cannot encode array of dtype {arr.dtype} (only numeric and bool dtypes)")
    # tobytes() is C-order for any layout (np.ascontiguousarray would turn 0-d into 1-d)
    return msgpack.packb([arr.dtype.str, list(arr.shape), arr.tobytes(order="C")], use_bin_type=True)


def _default(obj: Any) -> Any:
    """Called by msgpack for everything it does not pack natively (strict_types=True)."""
    if isinstance(obj, np.ndarray):
        return msgpack.ExtType(EXT_NDARRAY, _pack_array(obj))
    if isinstance(obj, np.generic):
        return msgpack.ExtType(EXT_NPSCALAR, _pack_array(np.asarray(obj)))
    if isinstance(obj, tuple):
        return list(obj)
    for kind in (int, float, str, bytes, list, dict):  # subclasses: IntEnum, OrderedDict, ...
        if isinstance(obj, kind):
            return cast(Any, kind)(obj)
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise CodecError(f"cannot encode object of type {type(obj).__module__}.{type(obj).__qualname__}")


def _unpack_array(code: int, data: bytes) -> np.ndarray:
    parts = msgpack.unpackb(data, raw=False)
    if not (isinstance(parts, list) and len(parts) == 3):
        raise CodecError(f"array ext: expected [dtype, shape, bytes], got {type(parts).__name__}")
    dtype_str, shape, raw = parts
    if not isinstance(dtype_str, str) or not isinstance(shape, list) or not isinstance(raw, bytes):
        raise CodecError("array ext: fields have the wrong types")
    try:
        dtype = np.dtype(dtype_str)
    except TypeError as e:
        raise CodecError(f"array ext: unknown dtype {dtype_str!r}") from e
    if dtype.kind not in ARRAY_KINDS or dtype.itemsize == 0:
        raise CodecError(f"array ext: unsupported dtype {dtype_str!r}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise CodecError(f"array ext: bad shape {shape!r}")
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != len(raw):
        raise CodecError(f"array ext: shape {tuple(shape)} of {dtype_str} needs "
                         f"{count * dtype.itemsize} bytes, got {len(raw)}")
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if code == EXT_NPSCALAR:
        if arr.ndim != 0:
            raise CodecError(f"scalar ext: expected shape (), got {arr.shape}")
        return arr[()]
    return arr


def _ext_hook(code: int, data: bytes) -> Any:
    if code in (EXT_NDARRAY, EXT_NPSCALAR):
        return _unpack_array(code, data)
    raise CodecError(f"unknown msgpack ext type {code}")


def encode(obj: Any) -> bytes:
    """Packs nested dicts/lists/scalars/bytes/numpy arrays into one compressed payload.

    Tuples come back as lists and dict subclasses as dicts; arrays and numpy scalars exactly.
    """
    try:
        packed = msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=True)
    except CodecError:
        raise
    except Exception as e:  # OverflowError, ValueError (too deep), TypeError
        raise CodecError(f"cannot encode {type(obj).__name__}: {e}") from e
    return bytes([FORMAT_VERSION]) + lz4.frame.compress(packed)


def decode(payload: bytes, max_decoded: int = MAX_DECODED) -> Any:
    """Inverse of encode; any malformed payload raises CodecError, and so does one that inflates past `max_decoded`
    bytes (a reader that knows what a message can hold passes that: nothing larger is ever inflated)."""
    max_decoded = min(max_decoded, MAX_DECODED)
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise CodecError(f"payload must be bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    if not payload:
        raise CodecError("empty payload")
    if payload[0] != FORMAT_VERSION:
        raise CodecError(f"unknown codec format {payload[0]} (expected {FORMAT_VERSION})")
    inflate = lz4.frame.LZ4FrameDecompressor()
    try:
        packed = inflate.decompress(payload[1:], max_length=max_decoded)
    except Exception as e:
        raise CodecError(f"payload of {len(payload)} bytes is not a valid lz4 frame: {e}") from e
    if not inflate.eof:  # cut short, or a small payload that would inflate without bound
        if not inflate.needs_input:
            raise TooLarge(f"payload of {len(payload)} bytes is not a valid lz4 frame: it inflates past "
                           f"{max_decoded} bytes")
        raise CodecError(f"payload of {len(payload)} bytes is not a valid lz4 frame: it is cut short")
    try:
        return msgpack.unpackb(packed, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except CodecError:
        raise
    except Exception as e:  # ExtraData, FormatError, StackError, UnicodeDecodeError, unhashable keys
        raise CodecError(f"payload is not valid msgpack: {type(e).__name__}: {e}") from e


def encode_segment(seg: Segment) -> bytes:
    """Encodes a segment; raises ValueError (from Segment.validate) if it is malformed."""
    seg.validate()
    return encode_valid_segment(seg)


def _ext_header(code: int, size: int) -> bytes:
    """msgpack's header of an ext of `size` bytes (fixext 1/2/4/8/16, ext 8/16/32)."""
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}.get(size)
    if fixed is not None:
        return struct.pack(">Bb", fixed, code)
    if size < 1 << 8:
        return struct.pack(">BBb", 0xC7, size, code)
    if size < 1 << 16:
        return struct.pack(">BHb", 0xC8, size, code)
    return struct.pack(">BIb", 0xC9, size, code)


def _bin_header(size: int) -> bytes:
    """msgpack's header of a bin of `size` bytes (bin 8/16/32)."""
    if size < 1 << 8:
        return struct.pack(">BB", 0xC4, size)
    if size < 1 << 16:
        return struct.pack(">BH", 0xC5, size)
    return struct.pack(">BI", 0xC6, size)


def _packb(obj: Any) -> bytes:
    return cast(bytes, msgpack.packb(obj, use_bin_type=True, strict_types=True))


#: the constant parts of a segment payload, packed once: the document up to "meta", the "steps" key and map header
#: (a map is packed in insertion order), and each step field's key and dtype
assert len(STEP_FIELDS) < 16  # fixmap headers: 0x80 | size
_SEGMENT_HEAD = bytes([0x80 | 3]) + _packb("kind") + _packb(SEGMENT_TAG) + _packb("meta")
_STEPS_HEAD = _packb("steps") + bytes([0x80 | len(STEP_FIELDS)])
_FIELD_HEADS = {name: (_packb(name), _packb(dtype.str)) for name, dtype in STEP_FIELDS.items()}


_HEADS: dict[tuple[str, tuple[int, ...]], bytes] = {}  # (field, shape) -> packed key, ext and array headers


def _field_head(name: str, shape: tuple[int, ...], nbytes: int) -> bytes:
    """A step field's packed key, ext header and array header ([dtype, shape, bin header]), cached by shape."""
    head = _HEADS.get((name, shape))
    if head is None:
        key, dtype = _FIELD_HEADS[name]
        inner = b"\x93" + dtype + _packb(list(shape)) + _bin_header(nbytes)
        head = key + _ext_header(EXT_NDARRAY, len(inner) + nbytes) + inner
        if len(_HEADS) >= 4096:  # shapes vary with segment length: a bounded cache
            _HEADS.clear()
        _HEADS[name, shape] = head
    return head


def encode_valid_segment(seg: Segment) -> bytes:
    """encode_segment for a segment already validated (Segment.validate): the same bytes, packed without msgpack's
    per-object callbacks and without copying the step arrays before compression (one join, then lz4)."""
    meta = {name: kind(getattr(seg, name)) for name, kind in META_FIELDS.items()}
    parts: list[Any] = [_SEGMENT_HEAD, _packb(meta), _STEPS_HEAD]
    for name in _FIELD_HEADS:
        arr = getattr(seg, name)
        parts.append(_field_head(name, arr.shape, arr.nbytes))
        parts.append(arr.data if arr.flags.c_contiguous else arr.tobytes(order="C"))
    return bytes([FORMAT_VERSION]) + lz4.frame.compress(b"".join(parts))


def _check_part(doc: dict[str, Any], part: str, expected: dict[str, Any]) -> dict[str, Any]:
    fields = doc.get(part)
    if not isinstance(fields, dict):
        raise CodecError(f"segment payload: {part!r} is {type(fields).__name__}, expected a map")
    missing = [k for k in expected if k not in fields]
    unknown = [k for k in fields if k not in expected]
    if missing:
        raise CodecError(f"segment payload: {part} field {missing[0]!r} is missing")
    if unknown:
        raise CodecError(f"segment payload: unknown {part} field {unknown[0]!r}")
    return fields


def decode_segment(payload: bytes) -> Segment:
    """Decodes and validates a segment; anything else raises CodecError naming the problem."""
    doc = decode(payload)
    if not isinstance(doc, dict) or doc.get("kind") not in (SEGMENT_TAG, V1_TAG):
        got = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise CodecError(f"payload is not a segment (kind {got!r}, expected {SEGMENT_TAG!r})")
    v1 = doc["kind"] == V1_TAG
    meta = _check_part(doc, "meta", META_FIELDS)
    steps = _check_part(doc, "steps", {k: v for k, v in STEP_FIELDS.items() if not (v1 and k == "image")})
    for name, kind in META_FIELDS.items():
        value = meta[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            meta[name] = value = float(value)
        if type(value) is not kind:
            raise CodecError(f"segment payload: meta field {name!r} is {type(value).__name__}, "
                             f"expected {kind.__name__}")
    for name, value in steps.items():
        if not isinstance(value, np.ndarray):
            raise CodecError(f"segment payload: step field {name!r} is {type(value).__name__}, "
                             f"expected an array")
    if v1:
        steps["image"] = np.zeros((len(steps["version"]), *NO_IMAGE.shape), np.uint8)
    seg = Segment(**meta, **steps)
    try:
        seg.validate()
    except ValueError as e:
        raise CodecError(f"segment payload: {e}") from e
    return seg
