"""One structured step for any pydantic model, scripted at a loopback server: the schema sent
in the shape the endpoint accepts, the answer found in any wrapping, a re-ask as a
conversation, one budget."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from endpoint_stub import Received, Reply, StubEndpoint, completion, error
from pydantic import BaseModel, Field

import refine_kit
from refine_kit import context, endpoint, prompts, structured
from refine_kit.errors import LLMOutputError
from refine_kit.offline.profiles import _strict_problem
from refine_kit.settings import LLMConfig


class Reason(BaseModel):
    claim: str
    weight: int = Field(ge=1, le=3)


class Verdict(BaseModel):
    """A nested model with an optional field: what a judge of two reports might return."""

    winner: str
    reasons: list[Reason]
    main: Reason
    caveat: str | None = None


VALID = {
    "winner": "A",
    "reasons": [{"claim": "clearer", "weight": 2}],
    "main": {"claim": "more concrete", "weight": 3},
    "caveat": None,
}


@pytest.fixture(autouse=True)
def _forget_endpoints():
    endpoint.forget()
    yield
    endpoint.forget()


def ask(stub: StubEndpoint, reasks: int = 2) -> tuple[Verdict, object]:
    config = LLMConfig(backend="openai", model="m", base_url=stub.base_url, reasks=reasks,
                       client_backoff=0)  # fmt: skip

    async def run() -> tuple[Verdict, object]:
        async with context.run(config):
            return await structured.ask_for(Verdict, "Judge.", "A or B?", step="critique")

    return asyncio.run(run())


def test_a_nested_model_is_asked_for_in_strict_shape_and_found_in_any_wrapping() -> None:
    fenced = f"<think>weighing both</think>Here it is:\n```json\n{json.dumps(VALID)}\n```"
    with StubEndpoint(lambda received, n: completion(fenced)) as stub:
        verdict, call = ask(stub)
    assert verdict == Verdict.model_validate(VALID)
    sent = stub.received[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    schema = sent["json_schema"]["schema"]
    assert _strict_problem(schema) is None  # as OpenAI's strict mode checks it
    assert schema["$defs"]["Reason"]["required"] == ["claim", "weight"]  # nested, not {}
    assert schema["properties"]["main"] == {"$ref": "#/$defs/Reason"}
    assert call.asks == 1 and call.requests == 1


def test_a_reask_is_a_conversation_and_shares_one_budget() -> None:
    bad = '{"winner": "A", "reasons": []}'

    def respond(received: Received, n: int) -> Reply:
        return completion(bad if n == 1 else json.dumps(VALID))

    with StubEndpoint(respond) as stub:
        verdict, call = ask(stub)
    assert verdict.winner == "A" and call.asks == 2
    first, second = (r.body["messages"] for r in stub.received)
    assert second[:2] == first  # the question is not rebuilt
    assert second[2] == {"role": "assistant", "content": bad}
    assert second[3]["role"] == "user" and "main: Field required" in second[3]["content"]
    assert second[3]["content"] == prompts.reask_prompt("main: Field required")


def test_no_valid_answer_within_the_budget_is_one_clear_error() -> None:
    stub = StubEndpoint(lambda received, n: completion('{"winner": 1}'))
    with stub, pytest.raises(LLMOutputError, match=r"no valid Verdict after 2 asks: .*main"):
        ask(stub, reasks=1)
    assert stub.requests == 2


def test_a_refused_schema_steps_down_and_the_answer_still_validates() -> None:
    def respond(received: Received, n: int) -> Reply:
        if received.body.get("response_format", {}).get("type") == "json_schema":
            return error(400, "response_format json_schema is not supported")
        return completion(json.dumps(VALID))

    with StubEndpoint(respond) as stub:
        verdict, _ = ask(stub)
    assert verdict.main.weight == 3
    shapes = [r.body.get("response_format", {}).get("type") for r in stub.received]
    assert shapes == ["json_schema", "json_object"]


def test_the_strict_schema_is_a_fresh_copy_each_time() -> None:
    first = endpoint.strict_schema(Verdict)
    first["properties"].clear()
    first["$defs"]["Reason"]["required"].append("oops")
    again = endpoint.strict_schema(Verdict)
    assert set(again["properties"]) == {"winner", "reasons", "main", "caveat"}
    assert again["$defs"]["Reason"]["required"] == ["claim", "weight"]


def test_the_pipelines_critique_reasks_in_conversation(tmp_path: Path) -> None:
    """The critique is that same step: a bad first critique is answered in the conversation."""
    from refine_kit.offline.model import OfflineModel

    model = OfflineModel()
    seen: list[list[dict]] = []

    def respond(received: Received, n: int) -> Reply:
        messages = received.body["messages"]
        json_mode = "response_format" in received.body
        if json_mode:
            seen.append(messages)
            if len(seen) == 1:
                return completion('{"score": 42}')
        return completion(model.complete(messages, json_mode=json_mode).content)

    with StubEndpoint(respond) as stub:
        result = refine_kit.refine(
            "Tidal power", backend="openai", base_url=stub.base_url, model="m",
            output_dir=tmp_path, cache=False, max_iterations=1, client_backoff=0,
        )  # fmt: skip
    assert result.accounting.reasks == 1
    assert [m["role"] for m in seen[1]] == ["system", "user", "assistant", "user"]
    assert seen[1][2]["content"] == '{"score": 42}'
