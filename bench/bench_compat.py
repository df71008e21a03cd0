"""The pipeline against every server profile: does each complete, and at what cost?

Runs 3 topics through `refine_batch` over real HTTP against `refine-kit serve`'s stand-in
in each profile (the plain OpenAI-strict server, LM Studio's response_format rule, Ollama's
and vLLM's error shapes, a model that fences its JSON, a reasoning model's `<think>` block,
a server that ignores JSON mode) and prints topics completed, requests counted at the
server, re-asks and the structured-output mode the client settled on.

    .venv/bin/python bench/bench_compat.py
"""

from __future__ import annotations

import tempfile

import refine_kit
from refine_kit import endpoint
from refine_kit.offline.profiles import PROFILES
from refine_kit.offline.server import OfflineServer
from refine_kit.settings import OFFLINE_MODEL

TOPICS = ["Heat pumps in cold climates", "Urban beekeeping", "Microplastics in drinking water"]


def run_profile(name: str) -> tuple[int, int, int, str]:
    """(topics completed, requests at the server, re-asks, structured mode used)."""
    endpoint.forget()
    with OfflineServer(profile=name) as server, tempfile.TemporaryDirectory() as out:
        batch = refine_kit.refine_batch(
            TOPICS,
            backend="openai",
            base_url=server.base_url,
            model=OFFLINE_MODEL,
            output_dir=out,
            cache=False,
            client_backoff=0,
        )
        mode = endpoint.capabilities(server.base_url, OFFLINE_MODEL).structured or "-"
        requests = sum(server.snapshot()["statuses"].values())  # refusals included
        return len(batch.succeeded), requests, batch.accounting.reasks, mode


def main() -> None:
    print(f"{'profile':18} {'completed':>9} {'requests':>8} {'re-asks':>7}  structured output")
    for name in PROFILES:
        done, requests, reasks, mode = run_profile(name)
        print(f"{name:18} {done:>7}/{len(TOPICS)} {requests:8d} {reasks:7d}  {mode}")


if __name__ == "__main__":
    main()
