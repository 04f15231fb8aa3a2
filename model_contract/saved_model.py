"""The signatures of a SavedModel, read straight from the protobuf wire format of
`saved_model.pb`: no TensorFlow (the program's environment cannot have it: the protobuf pins
conflict) and no generated classes. Only the fields a contract needs are decoded; the graph, by
far the largest part, is skipped by its length.

Field numbers are those of tensorflow/core/protobuf/{saved_model,meta_graph}.proto and
tensorflow/core/framework/{tensor_shape,types}.proto.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NotRequired, TypedDict, TypeVar

SERVING_TAG = "serve"
# TF's own entry in the signature map: it runs once at load and is no client's signature.
INIT_OP_SIGNATURE = "__saved_model_init_op"
# tensorflow/core/framework/types.proto, enum DataType, by number.
DTYPE_NAMES = (
    "DT_INVALID",
    "DT_FLOAT",
    "DT_DOUBLE",
    "DT_INT32",
    "DT_UINT8",
    "DT_INT16",
    "DT_INT8",
    "DT_STRING",
    "DT_COMPLEX64",
    "DT_INT64",
    "DT_BOOL",
    "DT_QINT8",
    "DT_QUINT8",
    "DT_QINT32",
    "DT_BFLOAT16",
    "DT_QINT16",
    "DT_QUINT16",
    "DT_UINT16",
    "DT_COMPLEX128",
    "DT_HALF",
    "DT_RESOURCE",
    "DT_VARIANT",
    "DT_UINT32",
    "DT_UINT64",
    "DT_FLOAT8_E5M2",
    "DT_FLOAT8_E4M3FN",
    "DT_FLOAT8_E4M3FNUZ",
    "DT_FLOAT8_E4M3B11FNUZ",
    "DT_FLOAT8_E5M2FNUZ",
    "DT_INT4",
    "DT_UINT4",
)

# Wire types (protobuf encoding); 3 and 4 (groups) appear in no TensorFlow message read here.
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_T = TypeVar("_T")
Field = tuple[int, "int | memoryview"]


class Tensor(TypedDict):
    """One input or output: TensorFlow's dtype name and its shape (-1: any size; None: any
    rank)."""

    dtype: str
    shape: list[int] | None
    default: NotRequired[bool]
    """Inputs only: present (and true) when the signature gives the input a default value."""


class Signature(TypedDict):
    method: str
    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]


class SavedModelError(Exception):
    """`saved_model.pb` cannot be read as a SavedModel; the message says what is wrong."""


def read_signatures(saved_model_pb: Path) -> dict[str, Signature]:
    """The signatures of the MetaGraph tagged `serve`, sorted by name."""
    try:
        data = saved_model_pb.read_bytes()
    except OSError as error:
        raise SavedModelError(f"cannot read {saved_model_pb}: {error.strerror}") from None
    try:
        return _serving_signatures(memoryview(data))
    except ValueError as error:
        raise SavedModelError(f"{saved_model_pb} is not a readable SavedModel: {error}") from None


def _serving_signatures(data: memoryview) -> dict[str, Signature]:
    meta_graphs = [_message(value) for field, value in _fields(data) if field == 2]
    if not meta_graphs:
        raise ValueError("it holds no MetaGraph")
    for meta_graph in meta_graphs:
        if SERVING_TAG in _tags(meta_graph):
            signatures = dict(
                _map_entry(value, _signature) for field, value in _fields(meta_graph) if field == 5
            )
            signatures.pop(INIT_OP_SIGNATURE, None)
            return dict(sorted(signatures.items()))
    raise ValueError(f"no MetaGraph is tagged {SERVING_TAG!r}")


def _tags(meta_graph: memoryview) -> list[str]:
    for field, meta_info in _fields(meta_graph):
        if field == 1:
            return [_text(tag) for number, tag in _fields(_message(meta_info)) if number == 4]
    return []


def _signature(data: memoryview) -> Signature:
    inputs: dict[str, Tensor] = {}
    outputs: dict[str, Tensor] = {}
    method = ""
    defaults: set[str] = set()
    for field, value in _fields(data):
        if field in (1, 2):
            name, tensor = _map_entry(value, _tensor)
            (inputs if field == 1 else outputs)[name] = tensor
        elif field == 3:
            method = _text(value)
        elif field == 4:
            defaults.add(_map_entry(value, lambda _: None)[0])
    for name in sorted(defaults & inputs.keys()):
        inputs[name]["default"] = True
    return Signature(
        method=method, inputs=dict(sorted(inputs.items())), outputs=dict(sorted(outputs.items()))
    )


def _tensor(data: memoryview) -> Tensor:
    dtype = 0
    shape: list[int] | None = []
    for field, value in _fields(data):
        if field == 2:
            dtype = _number(value)
        elif field == 3:
            shape = _shape(_message(value))
    name = DTYPE_NAMES[dtype] if dtype < len(DTYPE_NAMES) else f"DT_{dtype}"
    return Tensor(dtype=name, shape=shape)


def _shape(data: memoryview) -> list[int] | None:
    dims: list[int] = []
    for field, value in _fields(data):
        if field == 2:
            size = next((_number(v) for f, v in _fields(_message(value)) if f == 1), 0)
            # int64 on the wire: -1 (any size) arrives as 2**64 - 1.
            dims.append(-1 if size >= 2**63 else size)
        elif field == 3 and _number(value):
            return None
    return dims


def _map_entry(value: int | memoryview, parse: Callable[[memoryview], _T]) -> tuple[str, _T]:
    """A map<string, V> entry: key is field 1, value field 2."""
    key = ""
    item = memoryview(b"")
    for field, part in _fields(_message(value)):
        if field == 1:
            key = _text(part)
        elif field == 2:
            item = _message(part)
    return key, parse(item)


def _message(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise ValueError("a message field is encoded as a number")
    return value


def _number(value: int | memoryview) -> int:
    if isinstance(value, memoryview):
        raise ValueError("a number field is encoded as bytes")
    return value


def _text(value: int | memoryview) -> str:
    try:
        return bytes(_message(value)).decode()
    except UnicodeDecodeError:
        raise ValueError("a string field is not UTF-8") from None


def _fields(data: memoryview) -> Iterator[Field]:
    """(field number, value) of each field: varints as int, length-delimited as a view."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise ValueError(f"field number 0 at byte {position}")
        if wire_type == _VARINT:
            value, position = _varint(data, position)
            yield field, value
        elif wire_type == _LENGTH:
            length, position = _varint(data, position)
            if position + length > end:
                raise ValueError(f"truncated: a field of {length} bytes at byte {position}")
            yield field, data[position : position + length]
            position += length
        elif wire_type in (_FIXED64, _FIXED32):
            position += 8 if wire_type == _FIXED64 else 4
            if position > end:
                raise ValueError("truncated: a fixed-size field runs past the end")
        else:
            raise ValueError(f"wire type {wire_type} at byte {position}")


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated: a number runs past the end")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError(f"a number longer than 10 bytes at byte {position}")
