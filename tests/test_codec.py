"""The codec round-trips nested data and segments bit-exact and rejects garbage with CodecError."""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import lz4.frame
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings

from buffers.codec import CodecError, decode, decode_segment, encode, encode_segment
from buffers.schema import STEP_FIELDS, Segment

DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?", sizes=(16, 32, 64)),
    hnp.complex_number_dtypes(endianness="?"),
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
ARRAYS = DTYPES.flatmap(lambda dt: hnp.arrays(dt, SHAPES))
# non-contiguous views must encode their logical (C-order) content
STRIDED = ARRAYS.filter(lambda a: a.ndim >= 1).map(lambda a: a[::-1] if a.ndim == 1 else a.T)
SCALARS = DTYPES.flatmap(lambda dt: hnp.arrays(dt, ())).map(lambda a: a[()])
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=8),
    st.binary(max_size=16), ARRAYS, STRIDED, SCALARS,
)
NESTED = st.recursive(
    LEAVES,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=12,
)


def assert_same(a: Any, b: Any, where: str = "$") -> None:
    """Exact equality: same types, arrays by dtype + shape + bytes, floats by bit pattern."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, np.generic):
        assert type(a) is type(b) and a.dtype == b.dtype, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert type(b) is float and struct.pack("<d", a) == struct.pack("<d", b), where
    elif isinstance(a, dict):
        assert type(b) is dict and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert type(b) is list and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, where


@settings(max_examples=100, deadline=None)
@given(NESTED)
def test_nested_round_trip_is_bit_exact(obj: Any) -> None:
    assert_same(obj, decode(encode(obj)))


@pytest.mark.parametrize("arr", [
    np.array([np.nan, -0.0, np.inf, -np.inf], np.float32),
    np.frombuffer(b"\x01\x00\x00\x00\x00\x00\xf0\x7f", np.float64),  # signalling NaN, payload 1
    np.zeros((0, 5), np.float64), np.zeros((3, 0, 2), np.int8), np.array(7, np.uint64),
    np.array([True, False]), np.arange(6, dtype=">i4").reshape(2, 3),
])
def test_special_arrays_round_trip(arr: np.ndarray) -> None:
    assert_same(arr, decode(encode(arr)))


def test_subclasses_and_tuples_become_plain_types() -> None:
    out = decode(encode(OrderedDict(a=(1, 2.5, np.float64(3.0)))))
    assert out == {"a": [1, 2.5, 3.0]} and type(out) is dict and type(out["a"][2]) is np.float64


def test_unencodable_object_raises_codec_error() -> None:
    with pytest.raises(CodecError, match="object"):
        encode({"x": object()})
    with pytest.raises(CodecError, match="dtype"):
        encode(np.array(["a"], dtype=object))


def make_segment(n: int = 5, controller: str = "operator:1", obs_dim: int = 3, act_dim: int = 2) -> Segment:
    rng = np.random.default_rng(n)
    steps = [{
        "obs": rng.normal(size=obs_dim), "action": rng.normal(size=act_dim),
        "policy_action": rng.normal(size=act_dim), "version": 4, "spread": 0.1, "threshold": 0.2,
        "reward": -1.0, "success": i == n - 1, "constraint": False, "done": i == n - 1, "step": i,
        "t_wall": 1.7e9 + i,
    } for i in range(n)]
    return Segment.from_steps(2, 9, 1, controller, "handback", 1.7e9 + n, steps)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_segment_round_trip(n: int) -> None:
    seg = make_segment(n)
    out = decode_segment(encode_segment(seg))
    assert out.meta() == seg.meta()
    for name in STEP_FIELDS:
        assert_same(getattr(seg, name), getattr(out, name), name)


def test_decode_segment_rejects_non_segment_payloads() -> None:
    with pytest.raises(CodecError, match="not a segment"):
        decode_segment(encode({"hello": 1}))
    seg = make_segment()
    seg.reward = seg.reward[:-1]  # wrong length
    doc = {"kind": "segment/2", "meta": seg.meta(), "steps": {k: getattr(seg, k) for k in STEP_FIELDS}}
    with pytest.raises(CodecError, match="'reward'"):
        decode_segment(encode(doc))
    del doc["steps"]["obs"]  # type: ignore[attr-defined]
    with pytest.raises(CodecError, match="'obs' is missing"):
        decode_segment(encode(doc))


def test_camera_images_round_trip_bit_exact_and_compress() -> None:
    seg = make_segment(4)
    frame = np.zeros((4, 64, 64, 3), np.uint8)
    frame[:, 20:30, 40:50] = (200, 30, 30)  # a flat scene, as a rendered one mostly is
    seg.image = frame
    blob = encode_segment(seg)
    np.testing.assert_array_equal(decode_segment(blob).image, frame)
    assert len(blob) < frame.nbytes / 10  # lz4 over the whole payload
    seg.image = frame[..., :2]
    with pytest.raises(ValueError, match="'image'.*3 channels"):
        encode_segment(seg)


def test_a_segment_written_before_images_reads_with_empty_images() -> None:
    seg = make_segment(3)
    steps = {k: getattr(seg, k) for k in STEP_FIELDS if k != "image"}
    out = decode_segment(encode({"kind": "segment/1", "meta": seg.meta(), "steps": steps}))
    assert out.image.shape == (3, 0, 0, 3) and out.meta() == seg.meta()
    np.testing.assert_array_equal(out.obs, seg.obs)


def test_encode_segment_rejects_invalid_segment() -> None:
    seg = make_segment()
    seg.obs = seg.obs.astype(np.float64)
    with pytest.raises(ValueError, match="'obs'"):
        encode_segment(seg)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_codec_error(blob: bytes) -> None:
    for payload in (blob, b"\x01" + blob, b"\x01" + lz4.frame.compress(blob)):
        with pytest.raises(CodecError):
            decode_segment(payload)
        try:
            decode(payload)
        except CodecError:
            pass


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_truncated_or_corrupted_segment_raises_codec_error(data: st.DataObject) -> None:
    payload = encode_segment(make_segment(4))
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(CodecError):
        decode_segment(payload[:cut])
    pos = data.draw(st.integers(0, len(payload) - 1))
    flipped = bytearray(payload)
    flipped[pos] ^= data.draw(st.integers(1, 255))
    try:
        decode_segment(bytes(flipped))  # lz4 frames carry no checksum: a flip may decode to a valid segment
    except CodecError:
        pass


@pytest.mark.parametrize("inner", [
    msgpack.packb({"a": msgpack.ExtType(1, b"\x93\xa3<f4\x91\x05\xc4\x03abc")}),  # 5 floats, 3 bytes
    msgpack.packb(msgpack.ExtType(1, msgpack.packb(["|O", [1], b"12345678"]))),  # object dtype
    msgpack.packb(msgpack.ExtType(9, b"")),  # unknown ext
    b"\x81\x91\x01\x02",  # map with a list as key: unhashable
    b"\xc1",  # never-used msgpack byte
    msgpack.packb(1) + b"\x00",  # trailing data
])
def test_malformed_inner_msgpack_raises_codec_error(inner: bytes) -> None:
    with pytest.raises(CodecError):
        decode(b"\x01" + lz4.frame.compress(inner))


def test_a_payload_that_inflates_past_the_limit_is_refused_before_it_is_unpacked(monkeypatch):
    import buffers.codec

    payload = encode({"zeros": np.zeros(1 << 16, np.uint8)})
    assert len(payload) < 1000  # zeros compress ~250-fold
    monkeypatch.setattr(buffers.codec, "MAX_DECODED", 1 << 12)
    with pytest.raises(CodecError, match="inflates past 4096 bytes"):
        decode(payload)
    with pytest.raises(CodecError, match="cut short"):
        decode(payload[:len(payload) // 2])
