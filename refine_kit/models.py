"""Pydantic models for everything that crosses a boundary: LLM answers, task results, records.

They round-trip through Flyte tasks as the real classes, are written to disk as JSON, and
are what notebooks and the CLI display.
"""

# No `from __future__ import annotations` here: Flyte reads these models' type hints on every
# value it converts, and string annotations would have to be evaluated each time.
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Step = Literal["draft", "critique", "revise", "summary"]
StopReason = Literal["threshold", "max_iterations"]
#: "interrupted": the batch was stopped (Ctrl-C) before the topic finished.
TopicStatus = Literal["succeeded", "failed", "interrupted"]


class BoundaryModel(BaseModel):
    """A model that crosses Flyte task and trace boundaries (see `literals` for how)."""

    # Validators are built on first use, not at import: `refine-kit --help` never needs them.
    model_config = ConfigDict(defer_build=True)


class Critique(BoundaryModel):
    """The critic's structured verdict on one draft (the tutorial's model, unchanged in shape)."""

    model_config = ConfigDict(extra="ignore")

    score: int = Field(ge=1, le=10, description="Quality from 1 to 10; 8+ is ready to publish")
    strengths: list[str] = Field(description="What the draft does well")
    improvements: list[str] = Field(description="Specific changes the next revision should make")
    summary: str = Field(description="A one- or two-sentence assessment")


class Usage(BoundaryModel):
    """Token counts as the OpenAI API reports them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class LLMReply(BoundaryModel):
    """One chat completion: the text plus what it cost and when it ran."""

    text: str
    usage: Usage
    model: str
    started_at: float = Field(description="Unix time the request was sent")
    seconds: float = Field(description="Wall time of the request, client retries included")
    requests: int = Field(default=1, description="HTTP requests, the client's retries included")
    finish_reason: str = Field(default="stop", description="'length': cut at the token limit")


class CallRecord(BoundaryModel):
    """One traced step: which step, when it ran, what it cost."""

    step: Step
    started_at: float
    seconds: float
    usage: Usage
    model: str
    asks: int = Field(default=1, description="Questions asked: 1 plus any re-asks after bad output")
    requests: int = Field(default=1, description="HTTP requests: asks plus client-level retries")
    replayed: bool = Field(default=False, description="Served from a checkpoint, not paid again")


class StepResult(BoundaryModel):
    """What every traced step returns: its answer, and the record of the call behind it."""

    call: CallRecord


class TextStep(StepResult):
    """What a traced step that writes text returns."""

    text: str


class CritiqueStep(StepResult):
    """What the traced critique step returns."""

    critique: Critique


class Iteration(BoundaryModel):
    """One scored draft: iteration 0 is the first draft, n is the n-th revision."""

    index: int
    score: int
    critique: Critique
    words: int


class Accounting(BoundaryModel):
    """What a topic cost, and what checkpoints and the cache saved, in one run."""

    requests_sent: int = Field(0, description="HTTP requests sent, retries and all attempts")
    answers_received: int = Field(0, description="Chat completions received (each one billed)")
    replayed: int = Field(0, description="Steps served from checkpoints instead of the model")
    cached: int = Field(0, description="Steps served from the run cache (whole topic reused)")
    client_retries: int = Field(0, description="Requests the OpenAI client retried")
    reasks: int = Field(0, description="Questions asked again after an unusable answer")
    task_attempts: int = Field(1, description="Attempts of refine_report this run")
    prompt_tokens_used: int = Field(0, description="Prompt tokens paid for in this run")
    completion_tokens_used: int = Field(0, description="Completion tokens paid for in this run")
    tokens_saved: int = Field(0, description="Tokens replay and cache avoided paying again")
    cost_usd: float | None = Field(None, description="Estimated cost; None for unknown models")

    @property
    def tokens_used(self) -> int:
        return self.prompt_tokens_used + self.completion_tokens_used

    def __add__(self, other: "Accounting") -> "Accounting":
        costs = [c for c in (self.cost_usd, other.cost_usd) if c is not None]
        return Accounting(
            **{
                name: getattr(self, name) + getattr(other, name)
                for name in type(self).model_fields
                if name != "cost_usd"
            },
            cost_usd=round(sum(costs), 6) if costs else None,
        )


class RefineResult(BoundaryModel):
    """Everything `refine_report` learned about one topic."""

    topic: str
    report: str = Field(description="The best-scoring draft (the latest one on a tie)")
    summary: str
    score: int
    best_iteration: int = Field(description="Which iteration the returned report came from")
    stop_reason: StopReason
    quality_threshold: int
    max_iterations: int
    iterations: list[Iteration]
    drafts: list[str] = Field(default_factory=list, description="Every scored draft, in order")
    calls: list[CallRecord]
    usage: Usage = Field(description="Tokens of the calls behind the returned drafts")
    accounting: Accounting = Field(default_factory=Accounting)
    seconds: float = Field(description="Wall time of the task attempt that produced this")
    model: str
    backend: str
    endpoint: str = Field(default="", description="Where the calls went: 'offline' or a URL")
    run_name: str = Field(default="", description="The Flyte run that computed this result")

    @property
    def requests_sent(self) -> int:
        """HTTP requests this result cost in the run that produced it."""
        return self.accounting.requests_sent

    @property
    def scores(self) -> list[int]:
        return [it.score for it in self.iterations]


class TopicOutcome(BoundaryModel):
    """One topic's line in a batch: it either succeeded with a result or failed with an error."""

    topic: str
    status: TopicStatus
    error: str | None = None
    result: RefineResult | None = None
    folder: str | None = Field(default=None, description="Where the topic's files were written")
    from_cache: bool = False
    spent: Accounting | None = Field(
        default=None, description="What a failed topic cost before it failed (requests, tokens)"
    )
    saved_steps: int = Field(
        default=0, description="An interrupted topic's steps saved for a rerun to replay"
    )

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def accounting(self) -> Accounting:
        """What this topic cost in this run, whether it succeeded or failed."""
        if self.result is not None:
            return self.result.accounting
        return self.spent or Accounting(task_attempts=0)


class BatchResult(BoundaryModel):
    """What `report_batch_pipeline` returns: every topic, in the order given."""

    outcomes: list[TopicOutcome]
    output_dir: str
    manifest: str = Field(description="Path of the batch manifest.json")
    seconds: float
    max_concurrency: int
    settings: dict[str, Any] = Field(default_factory=dict, description="What the batch ran with")

    @property
    def succeeded(self) -> list[TopicOutcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[TopicOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def interrupted(self) -> list[TopicOutcome]:
        """Topics the batch was stopped before finishing (Ctrl-C); a rerun resumes them."""
        return [o for o in self.outcomes if o.status == "interrupted"]

    @property
    def requests_sent(self) -> int:
        return self.accounting.requests_sent

    @property
    def accounting(self) -> Accounting:
        """The batch's totals, failed topics' requests and tokens included."""
        total = Accounting(task_attempts=0)
        for outcome in self.outcomes:
            total += outcome.accounting
        return total
