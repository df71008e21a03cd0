"""Accounting: what a topic's work cost, counted where the requests are made.

A `Ledger` is filled while a topic runs (every HTTP request, the client's retries included,
and the tokens the endpoint reported), across all of the topic's task attempts in a run.
When the topic finishes, `summarise` turns it and the step records into the `Accounting`
shown in results, records, the manifest and the CLI, and `price` adds the estimated cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from refine_kit.models import Accounting, CallRecord, RefineResult
from refine_kit.pricing import estimate_cost


@dataclass
class Ledger:
    """What one topic's work cost in this run, across all its task attempts."""

    requests: int = 0  # sent, the client's retries included
    answers: int = 0  # chat completions received (each one billed)
    client_retries: int = 0  # requests the client sent again after a transient failure
    reasks: int = 0  # questions asked again after an unusable answer
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def count_tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens


def summarise(calls: list[CallRecord], ledger: Ledger) -> Accounting:
    """The topic's accounting: what was paid from the ledger, what was replayed from steps.

    Paid figures come from the ledger alone, so a topic that failed (whose steps are lost)
    and one that succeeded are counted the same way.
    """
    replayed = [c for c in calls if c.replayed]
    return Accounting(
        requests_sent=ledger.requests,
        answers_received=ledger.answers,
        replayed=len(replayed),
        client_retries=ledger.client_retries,
        reasks=ledger.reasks,
        task_attempts=ledger.attempts,
        prompt_tokens_used=ledger.prompt_tokens,
        completion_tokens_used=ledger.completion_tokens,
        tokens_saved=sum(c.usage.total_tokens for c in replayed),
    )


def spent_before_failing(
    ledger: Ledger | None, model: str, prices: dict[str, tuple[float, float]], endpoint: str
) -> Accounting:
    """What a topic that failed for good cost: its requests, answers, tokens and their price."""
    ledger = ledger or Ledger()
    return Accounting(
        requests_sent=ledger.requests,
        answers_received=ledger.answers,
        client_retries=ledger.client_retries,
        reasks=ledger.reasks,
        task_attempts=ledger.attempts,
        prompt_tokens_used=ledger.prompt_tokens,
        completion_tokens_used=ledger.completion_tokens,
        cost_usd=estimate_cost(
            model, ledger.prompt_tokens, ledger.completion_tokens, prices, endpoint=endpoint
        ),
    )


def price(
    result: RefineResult, from_cache: bool, prices: dict[str, tuple[float, float]]
) -> RefineResult:
    """Price the run's tokens; a cache hit cost nothing this run and saved all it once cost."""
    acc = result.accounting
    if from_cache:
        acc = Accounting(
            cached=len(result.calls),
            task_attempts=0,
            tokens_saved=result.usage.total_tokens,
        )
        used = (0, 0)
    else:
        share = acc.tokens_used / max(result.usage.total_tokens, 1)
        used = (
            round(result.usage.prompt_tokens * share),
            round(result.usage.completion_tokens * share),
        )
    cost = estimate_cost(result.model, *used, prices, endpoint=result.endpoint or "offline")
    return result.model_copy(update={"accounting": acc.model_copy(update={"cost_usd": cost})})
