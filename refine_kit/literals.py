"""How the kit's models cross Flyte task and trace boundaries: the same literals, less work.

Flyte converts every traced step's result and every task input and output to a literal, and
back. For a pydantic model its `PydanticTransformer` rebuilds the literal type (the model's
JSON schema as a protobuf Struct) on every value, serialises to a JSON string and parses it
again, and walks the value against `typing.get_type_hints` of each nested model looking for
enum fields. On a fast local run that was a third of the kit's CPU per LLM call.

None of that work can change its answer for the kit's `BoundaryModel`s: their schemas are
fixed while the process runs, and they hold no enums and no Flyte file types. So
`BoundaryTransformer` keeps Flyte's literal format exactly (same literal type, same
MessagePack bytes: a cluster records what it recorded before; a test compares both
transformers byte for byte) and skips the rest. `register()` installs it; the modules that
hand models to Flyte (`traced`, `tasks`) call it when they are imported. It builds on
Flyte's own transformer class and registry (flyte is pinned to 2.12.x); should an upgrade
change the format, the byte-for-byte test fails first.
"""

from __future__ import annotations

import functools
import json
import typing
from typing import Any

import msgpack
from flyte.types import TypeEngine
from flyte.types._type_engine import MESSAGEPACK, PydanticTransformer
from flyteidl2.core.literals_pb2 import Binary, Literal, Scalar
from flyteidl2.core.types_pb2 import LiteralType
from pydantic import BaseModel

from refine_kit.models import BoundaryModel


def _validate(kind: type[BaseModel], data: Any) -> BaseModel:
    """Validate as Flyte's own transformer does, so validators see the same context."""
    return kind.model_validate(data, strict=False, context={"deserialize": True})


class BoundaryTransformer(PydanticTransformer):
    """Flyte's pydantic transformer for `BoundaryModel`s, minus the repeated work.

    It keeps the name "Pydantic Transformer" on purpose: unions of models carry the name in
    their literal type, and a cluster must see the same type it always did.
    """

    def __init__(self) -> None:
        super().__init__()
        self._t = BoundaryModel  # registered for the kit's base class, not every BaseModel
        self._types: dict[type, LiteralType] = {}

    def get_literal_type(self, t: type[BaseModel]) -> LiteralType:
        """Built once per class; each caller gets its own copy (protobuf messages are mutable)."""
        built = self._types.get(t)
        if built is None:
            built = self._types[t] = super().get_literal_type(t)
        copy = LiteralType()
        copy.CopyFrom(built)
        return copy

    async def to_literal(
        self, python_val: BaseModel, python_type: type[BaseModel], expected: LiteralType
    ) -> Literal:
        if not isinstance(python_val, BoundaryModel):  # a plain dict to coerce, say
            return await super().to_literal(python_val, python_type, expected)
        return Literal(scalar=Scalar(binary=Binary(value=_pack(python_val), tag=MESSAGEPACK)))

    def from_binary_idl(self, binary_idl_object: Binary, expected_python_type: type[Any]) -> Any:
        if binary_idl_object.tag != MESSAGEPACK:
            return super().from_binary_idl(binary_idl_object, expected_python_type)
        try:
            return _unpack(binary_idl_object.value, expected_python_type)
        except (ValueError, msgpack.UnpackException):  # not what _pack writes: the long way
            data = msgpack.loads(binary_idl_object.value, strict_map_key=False)
            return _validate(expected_python_type, data)


def _pack(model: BaseModel) -> bytes:
    """The MessagePack of `json.loads(model.model_dump_json())`, as Flyte writes it, built
    field by field and, for lists of models, item by item.

    The same bytes (MessagePack is a stream: a map is its header, then its keys and values),
    but a batch of a thousand results never exists at once as one JSON text and one dict
    beside the models themselves: that was most of a large batch's peak memory.
    """
    streamed = _model_lists(type(model))
    # Through JSON text, as Flyte does: NaN and infinities become null the same way.
    if not streamed:
        return msgpack.dumps(json.loads(model.model_dump_json()))
    rest = json.loads(model.model_dump_json(exclude=set(streamed)))
    packer = msgpack.Packer()
    parts = [packer.pack_map_header(len(type(model).model_fields))]
    for name in type(model).model_fields:
        parts.append(packer.pack(name))
        if name not in streamed:
            parts.append(packer.pack(rest[name]))
            continue
        items = getattr(model, name)
        parts.append(packer.pack_array_header(len(items)))
        parts.extend(packer.pack(json.loads(item.model_dump_json())) for item in items)
    return b"".join(parts)


def _unpack(packed: bytes, kind: type[BaseModel]) -> BaseModel:
    """`_pack` read back: list items are validated as they are read, for the same reason."""
    unpacker = msgpack.Unpacker(strict_map_key=False, max_buffer_size=len(packed) or 1)
    unpacker.feed(packed)
    data: dict[str, Any] = {}
    lists = _model_lists(kind)
    for _ in range(unpacker.read_map_header()):
        name = unpacker.unpack()
        if name not in lists:
            data[name] = unpacker.unpack()
            continue
        count = unpacker.read_array_header()
        data[name] = [_validate(lists[name], unpacker.unpack()) for _ in range(count)]
    return _validate(kind, data)


@functools.cache
def _model_lists(kind: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The fields of `kind` that hold a list of models, with the model class of their items."""
    lists = {}
    for name, field in kind.model_fields.items():
        if typing.get_origin(field.annotation) is list:
            (item,) = typing.get_args(field.annotation)
            if isinstance(item, type) and issubclass(item, BaseModel):
                lists[name] = item
    return lists


def register() -> None:
    """Register `BoundaryTransformer` once; subclasses of `BoundaryModel` find it by MRO."""
    if BoundaryModel not in TypeEngine._REGISTRY:
        TypeEngine.register(BoundaryTransformer())
