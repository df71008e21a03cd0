"""How the kit's models cross Flyte task and trace boundaries: the same literals, less work.

Flyte converts every traced step's result and every task input and output to a literal, and
back. For a pydantic model its `PydanticTransformer` rebuilds the literal type (the model's
JSON schema as a protobuf Struct) on every value, and walks the value against
`typing.get_type_hints` of each nested model looking for enum fields. On a fast local run
that was about an eighth of the kit's CPU per LLM call.

None of that work can change its answer for the kit's `BoundaryModel`s: their schemas are
fixed while the process runs, and they hold no enums and no Flyte file types. So
`BoundaryTransformer` keeps Flyte's literal format exactly (same literal type, same
MessagePack bytes: a cluster records what it recorded before; a test compares both
transformers byte for byte) and skips the rest. `register()` installs it; `traced` calls it
when imported, before any task (`tasks` imports `traced`) hands a model to Flyte. It builds on
Flyte's own transformer class and registry (flyte is pinned to 2.12.x); should an upgrade
change the format, the byte-for-byte test fails first. This is the one place the kit uses a
private module of another package (`flyte.types._type_engine`): Flyte offers no public way
to register a transformer for a base class, nor its MessagePack format name.
"""

from __future__ import annotations

import json
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
        super().__init__()  # type: ignore[no-untyped-call]  # Flyte's has no annotations
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
        # Through JSON text, as Flyte does: NaN and infinities become null the same way.
        packed = msgpack.dumps(json.loads(python_val.model_dump_json()))
        return Literal(scalar=Scalar(binary=Binary(value=packed, tag=MESSAGEPACK)))

    def from_binary_idl(self, binary_idl_object: Binary, expected_python_type: type[Any]) -> Any:
        if binary_idl_object.tag != MESSAGEPACK:
            return super().from_binary_idl(binary_idl_object, expected_python_type)
        data = msgpack.loads(binary_idl_object.value, strict_map_key=False)
        return _validate(expected_python_type, data)


def register() -> None:
    """Register `BoundaryTransformer` once; subclasses of `BoundaryModel` find it by MRO."""
    if BoundaryModel not in TypeEngine._REGISTRY:
        TypeEngine.register(BoundaryTransformer())
