"""A refinement result built by hand (no LLM, no Flyte), for tests of what is made of one.

A helper module, not a test module: tests import it as they import `endpoint_stub`.
"""

from __future__ import annotations

from refine_kit.models import Accounting, CallRecord, Critique, Iteration, RefineResult, Usage

REPORT = """# Heat Pumps in Cold Climates

Why they matter **now**.

## How they work

- A refrigerant loop
- An inverter-driven compressor

| Climate | COP |
|---------|-----|
| Mild    | 4.0 |
| Cold    | 2.5 |

<script>alert("pwned")</script>

## Conclusion

They work.
"""


def make_result(topic: str = "Heat pumps in cold climates", **overrides: object) -> RefineResult:
    """A plausible two-iteration result, built by hand (no LLM, no Flyte)."""
    critique_1 = Critique(
        score=6,
        strengths=["Clear structure"],
        improvements=["Add figures for cold-climate efficiency"],
        summary="Solid but thin on numbers.",
    )
    critique_2 = Critique(
        score=8,
        strengths=["Concrete COP figures", "Good conclusion"],
        improvements=[],
        summary="Ready to publish.",
    )
    usage = Usage(prompt_tokens=900, completion_tokens=600, total_tokens=1500)
    steps = [("draft", 0), ("critique", 0), ("revise", 1), ("critique", 1), ("summary", 1)]
    calls = [
        CallRecord(
            step=step,
            iteration=iteration,
            started_at=1_700_000_000.0 + n,
            seconds=1.5,
            usage=Usage(prompt_tokens=180, completion_tokens=120, total_tokens=300),
            model="offline-echo",
        )
        for n, (step, iteration) in enumerate(steps)
    ]
    fields: dict[str, object] = {
        "topic": topic,
        "report": REPORT,
        "summary": "Heat pumps now work well even in cold climates.",
        "score": 8,
        "best_iteration": 1,
        "stop_reason": "threshold",
        "quality_threshold": 8,
        "max_iterations": 3,
        "iterations": [
            Iteration(index=0, score=6, critique=critique_1, words=420),
            Iteration(index=1, score=8, critique=critique_2, words=610),
        ],
        "calls": calls,
        "usage": usage,
        "accounting": Accounting(
            requests_sent=len(calls), prompt_tokens_used=900, completion_tokens_used=600
        ),
        "seconds": 7.5,
        "model": "offline-echo",
        "backend": "offline",
        "run_name": "r-abc123",
    }
    fields.update(overrides)
    return RefineResult.model_validate(fields)
