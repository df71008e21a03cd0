"""The kit's models cross Flyte boundaries as Flyte's own transformer would send them.

`BoundaryTransformer` skips work, not format: a cluster must record the same literal type
and the same MessagePack bytes as before, and values must come back equal.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from flyte.types import TypeEngine
from flyte.types._type_engine import PydanticTransformer
from pydantic import BaseModel
from sample_result import make_result

from refine_kit import literals
from refine_kit.models import (
    Accounting,
    BatchResult,
    BoundaryModel,
    CallRecord,
    Critique,
    CritiqueStep,
    TextStep,
    TopicOutcome,
    Usage,
)
from refine_kit.offline.faults import FaultPlan
from refine_kit.settings import LLMConfig, RunOptions

CALL = CallRecord(
    step="critique",
    started_at=1_700_000_000.25,
    seconds=0.125,
    usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
    model="m",
    asks=2,
)
CONFIG = LLMConfig(backend="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:1/v1")
SAMPLES: list[BaseModel] = [
    TextStep(text="# Title\n\nUnicode: café, 北京, emoji 🌍", call=CALL),
    CritiqueStep(
        call=CALL, critique=Critique(score=7, strengths=["a"], improvements=[], summary="s")
    ),
    make_result(),
    TopicOutcome(topic="t", status="failed", error="boom", spent=None),
    BatchResult(
        outcomes=[
            TopicOutcome(topic="x", status="succeeded", result=make_result("x")),
            TopicOutcome(topic="y", status="failed", error="boom", spent=Accounting()),
            TopicOutcome(topic="z", status="succeeded", result=make_result("z"), from_cache=True),
        ],
        output_dir="out",
        manifest="out/manifest.json",
        seconds=math.pi,
        max_concurrency=8,
        settings={"prices": {"m": [0.1, 0.2]}, "cache": True, "nothing": None},
    ),
    CONFIG,
    RunOptions(llm=CONFIG, output_dir=None, prices={"m": (0.5, 1.5)}),
    FaultPlan(step="draft", nth=2),
    BatchResult(outcomes=[], output_dir="", manifest="", seconds=0, max_concurrency=1),
]
# Not a value the kit makes, but the bytes must agree at the edges too (infinity: null).
EDGES: list[BaseModel] = [
    CallRecord(step="draft", started_at=float("inf"), seconds=0.0, usage=Usage(), model="m"),
]


def _convert(transformer: PydanticTransformer, value: BaseModel) -> tuple[bytes, bytes]:
    kind = type(value)
    literal_type = transformer.get_literal_type(kind)
    literal = asyncio.run(transformer.to_literal(value, kind, literal_type))
    return literal_type.SerializeToString(deterministic=True), literal.SerializeToString()


def test_the_tasks_register_the_boundary_transformer_for_every_kit_model() -> None:
    import refine_kit.tasks  # noqa: F401 - importing the tasks registers it

    for kind in {type(sample) for sample in SAMPLES}:
        assert isinstance(TypeEngine.get_transformer(kind), literals.BoundaryTransformer)
    before = dict(TypeEngine._REGISTRY)
    literals.register()  # again: harmless
    assert before == TypeEngine._REGISTRY

    class Elsewhere(BaseModel):
        x: int = 0

    assert type(TypeEngine.get_transformer(Elsewhere)) is PydanticTransformer


@pytest.mark.parametrize("value", SAMPLES + EDGES, ids=lambda v: type(v).__name__)
def test_same_literal_type_and_bytes_as_flytes_own_transformer(value: BaseModel) -> None:
    assert isinstance(value, BoundaryModel)
    ours = _convert(literals.BoundaryTransformer(), value)
    flytes = _convert(PydanticTransformer(), value)
    assert ours == flytes


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_values_come_back_equal(value: BaseModel) -> None:
    kind = type(value)
    literal_type = TypeEngine.to_literal_type(kind)
    literal = asyncio.run(TypeEngine.to_literal(value, kind, literal_type))
    assert asyncio.run(TypeEngine.to_python_value(literal, kind)) == value
    # Flyte's transformer reads what ours wrote, so a mixed deployment agrees too.
    assert PydanticTransformer().from_binary_idl(literal.scalar.binary, kind) == value


def test_a_literal_type_handed_out_cannot_change_the_next_one() -> None:
    transformer = literals.BoundaryTransformer()
    first = transformer.get_literal_type(Usage)
    first.metadata.Clear()
    assert transformer.get_literal_type(Usage) == PydanticTransformer().get_literal_type(Usage)


def test_optional_models_in_task_inputs_still_round_trip() -> None:
    kind = LLMConfig | None
    literal_type = TypeEngine.to_literal_type(kind)
    for value in (CONFIG, None):
        literal = asyncio.run(TypeEngine.to_literal(value, kind, literal_type))
        assert asyncio.run(TypeEngine.to_python_value(literal, kind)) == value
