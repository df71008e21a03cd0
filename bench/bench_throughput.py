"""Throughput: the kit beside a plain asyncio + openai script, on the same loopback server.

Why: the kit adds Flyte tasks, traces, checkpoints, files and pacing around each LLM call.
This puts a number on what that costs (CPU, memory, time) and on what it buys under rate
limits, against the shortest honest script that makes the same calls.

Both contenders make IDENTICAL calls (draft; critique with the kit's strict JSON schema;
revise while the score is under the threshold and revisions remain; summary of the best
draft; same model, `max_tokens` and retry budget) to an `OfflineServer` this script starts.
Each contender runs in its own subprocess, so CPU time and peak memory are its own; the
server, in this process, counts every request. Scenarios:

- cpu: latency 0, 200 and 1,000 topics: wall, CPU per LLM call, peak RSS, requests;
- latency: 0.5 s per call, at most 8 in flight, 5 and 50 topics: wall against the ideal,
  the kit on a new endpoint and on one an earlier run remembered;
- ratelimit: a server enforcing RPM and TPM as OpenAI does: useful throughput as a share of
  the binding limit, and 429s as a share of requests, for the kit at concurrency 8 and 64
  (and paced to the stated limits, when the kit has those settings).
- startup: `refine-kit --help`, `import refine_kit`, and the first result of a one-topic run
  (process start to exit, the kit's CLI against the plain script), median of 5, warm disk.

    python bench/bench_throughput.py --quick              # every scenario, small: < 1 min
    python bench/bench_throughput.py --scenario latency   # one scenario, full size
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "refine-kit-offline"


def topic_names(count: int) -> list[str]:
    return [f"Benchmark topic {i}: the economics of item {i}" for i in range(count)]


# ---------------------------------------------------------------------------------------------
# The baseline: what one writes by hand with asyncio and the openai SDK. The kit's prompts,
# model, max_tokens, critique schema, stopping rule and retry budget; nothing else.


async def baseline_batch(
    url: str, topics: list[str], max_concurrency: int
) -> tuple[list[list[int]], int]:
    """Refine every topic, at most `max_concurrency` calls in flight; return the tokens of
    each call of each finished topic, and how many topics failed."""
    import openai
    from openai.types.chat import ChatCompletionMessageParam

    from refine_kit import prompts as P
    from refine_kit.endpoint import strict_schema
    from refine_kit.models import Critique
    from refine_kit.settings import default

    threshold, max_iterations = default("quality_threshold"), default("max_iterations")
    schema = {"name": "Critique", "schema": strict_schema(Critique), "strict": True}
    critique_format = {"type": "json_schema", "json_schema": schema}
    client = openai.AsyncOpenAI(
        base_url=url,
        api_key="not-needed",
        max_retries=default("client_max_retries"),
        timeout=default("request_timeout"),
    )
    gate = asyncio.Semaphore(max_concurrency)

    async def ask(spent: list[int], system: str, prompt: str, **extra: Any) -> str:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt},
        ]
        async with gate:
            reply = await client.chat.completions.create(
                model=MODEL, messages=messages, max_tokens=default("max_tokens"), **extra
            )
        spent.append(reply.usage.total_tokens if reply.usage else 0)
        return (reply.choices[0].message.content or "").strip()

    async def critique(spent: list[int], draft: str, previous: list[str] | None = None) -> Critique:
        prompt = P.critique_prompt(draft, previous)
        text = await ask(spent, P.CRITIC_SYSTEM_PROMPT, prompt, response_format=critique_format)
        return Critique.model_validate_json(text[text.find("{") : text.rfind("}") + 1])

    async def refine(topic: str) -> list[int]:
        spent: list[int] = []  # each call's tokens, as the server's usage reports them
        drafts = [await ask(spent, P.GENERATOR_SYSTEM_PROMPT, P.draft_prompt(topic))]
        reviews = [await critique(spent, drafts[0])]
        while reviews[-1].score < threshold and len(drafts) <= max_iterations:
            asked = reviews[-1].improvements
            revised = await ask(spent, P.REVISER_SYSTEM_PROMPT, P.revise_prompt(drafts[-1], asked))
            drafts.append(revised)
            reviews.append(await critique(spent, revised, asked))
        best = max(range(len(drafts)), key=lambda i: (reviews[i].score, i))  # latest on a tie
        await ask(spent, P.SUMMARY_SYSTEM_PROMPT, P.summary_prompt(drafts[best]))
        return spent

    async with client:
        done = await asyncio.gather(*(refine(t) for t in topics), return_exceptions=True)
    finished = [spent for spent in done if isinstance(spent, list)]
    return finished, len(done) - len(finished)


# ---------------------------------------------------------------------------------------------
# One contender in its own process (this file, run with --contender)


def kit_batch(
    url: str, topics: list[str], max_concurrency: int, extra: dict[str, Any]
) -> tuple[list[list[int]], int]:
    """The same work through `refine_kit.refine_batch`, over HTTP, cache off; returned as
    `baseline_batch` returns it."""
    import refine_kit

    with tempfile.TemporaryDirectory() as out:
        batch = refine_kit.refine_batch(
            topics,
            backend="openai",
            base_url=url,
            model=MODEL,
            max_concurrency=max_concurrency,
            cache=False,
            output_dir=out,
            **extra,
        )
    finished = [o.result for o in batch.outcomes if o.result is not None]
    return [[c.usage.total_tokens for c in r.calls] for r in finished], len(batch.failed)


def server_stats(url: str) -> dict[str, Any]:
    import httpx2

    stats_url = url.removesuffix("/v1") + "/refine-kit/stats"
    answer: dict[str, Any] = httpx2.get(stats_url, trust_env=False).json()
    return answer


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_contender(args: argparse.Namespace) -> None:
    """Run one batch and write what it measured to `args.out` (start-up timed apart)."""
    entered = time.perf_counter()
    names, extra = topic_names(args.topics), json.loads(args.settings)
    if args.contender == "kit":
        import refine_kit

        # Flyte's start-up is paid once per process: pay it apart, on a server of its own.
        with tempfile.TemporaryDirectory() as out:
            settings = {"backend": "openai", "base_url": args.warm, "model": MODEL}
            refine_kit.refine("Warm-up topic", output_dir=out, cache=False, **settings)
    else:
        import openai  # noqa: F401 - its import is the baseline's start-up

    before, cpu_before = server_stats(args.url), cpu_seconds()
    started = time.perf_counter()
    if args.contender == "kit":
        finished, failed = kit_batch(args.url, names, args.limit, extra)
    else:
        finished, failed = asyncio.run(baseline_batch(args.url, names, args.limit))
    wall = time.perf_counter() - started
    cpu, after = cpu_seconds() - cpu_before, server_stats(args.url)
    statuses = {
        code: n - before["statuses"].get(code, 0)
        for code, n in after["statuses"].items()
        if n - before["statuses"].get(code, 0)
    }
    result = {
        "start": started - entered,
        "wall": wall,
        "cpu": cpu,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "chains": [len(calls) for calls in finished],  # calls per finished topic
        "useful_tokens": sum(map(sum, finished)),  # prompt + completion of finished topics
        "failed": failed,
        "statuses": statuses,
        "requests": sum(statuses.values()),
        "max_in_flight": after["max_in_flight"],
        "rate_limits": after.get("rate_limits"),
    }
    Path(args.out).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# The driver: servers here, contenders in subprocesses, tables on stdout


@dataclass(frozen=True)
class Sizes:
    cpu_topics: tuple[int, ...] = (200, 1000)
    latency: float = 0.5
    latency_limit: int = 8
    latency_topics: tuple[int, ...] = (5, 50)
    # 100 topics make ~700 calls costing ~3,100 tokens each at admission (prompt + max_tokens
    # 2,000), ~1,700 once the unused reservation is returned: ~1.2M tokens, over 2.5 minutes'
    # worth of TPM, so TPM binds within seconds and the run takes ~1.5 minutes. 600 RPM
    # would take ~70 s for the same calls: it binds less.
    rate_topics: int = 100
    rate_latency: float = 0.2
    rpm: int = 600
    tpm: int = 450_000
    startup_runs: int = 5


#: A smoke run: every code path, one small size each; TPM binds only for the last seconds.
QUICK = Sizes(
    cpu_topics=(20,),
    latency=0.1,
    latency_topics=(5,),
    rate_topics=5,
    rate_latency=0.1,
    rpm=600,
    tpm=57_000,
    startup_runs=1,
)


def rate_rows(sizes: Sizes) -> list[tuple[str, int, dict[str, Any], bool]]:
    """The rate-limited scenario's rows: (contender, concurrency, extra kit settings, whether
    the server sends x-ratelimit-* headers).

    Without headers and stated limits the kit has only its fixed concurrency (and the shared
    pause on a 429), as before it paced; the baseline is a client that honours Retry-After."""
    stated = {"requests_per_minute": sizes.rpm, "tokens_per_minute": sizes.tpm}
    return [
        ("kit, no headers", 8, {}, False),
        ("kit, no headers", 64, {}, False),
        ("kit, learned", 64, {}, True),
        ("kit, stated", 64, stated, False),
        ("baseline", 64, {}, True),
    ]


def launch(
    contender: str,
    url: str,
    topics: int,
    limit: int,
    warm_url: str,
    settings: dict[str, Any] | None = None,
    cache_home: str | None = None,
) -> dict[str, Any]:
    """One contender in a fresh subprocess with its own Flyte config and a clean environment.

    The kit remembers endpoints in the user's cache folder: a fresh one per contender (a
    new endpoint) unless `cache_home` is shared with an earlier run (a remembered one).
    """
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "config.yaml"
        config.write_text("{}\n")
        out = Path(home) / "result.json"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REFINE_KIT_", "OPENAI_")) and "proxy" not in k.lower()
        }
        env |= {"FLYTECTL_CONFIG": str(config), "DO_NOT_TRACK": "1", "NO_PROXY": "127.0.0.1"}
        env["XDG_CACHE_HOME"] = cache_home or str(Path(home) / "cache")
        args = [sys.executable, __file__, "--contender", contender.split(",")[0], "--url", url]
        args += ["--topics", str(topics), "--limit", str(limit), "--out", str(out)]
        args += ["--settings", json.dumps(settings or {}), "--warm", warm_url]
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            sys.exit(f"{contender} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
    return result


def print_table(title: str, columns: Sequence[str], rows: list[list[str]], left: int = 2) -> None:
    """Plain aligned text: the first `left` columns to the left, numbers to the right."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(f"\n{title}\n{line(columns)}\n{line(['-' * w for w in widths])}")
    for row in rows:
        print(line(row))


def same_requests(label: str, results: dict[str, dict[str, Any]]) -> str:
    counts = {name: r["requests"] for name, r in results.items()}
    verdict = "identical" if len(set(counts.values())) == 1 else "DIFFERENT"
    shown = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    return f"  {label}: requests {shown}: {verdict}"


def scenario_cpu(sizes: Sizes, warm_url: str) -> None:
    from refine_kit.offline.server import OfflineServer

    rows, checks = [], []
    for topics in sizes.cpu_topics:
        results = {}
        with OfflineServer() as server:
            for name in ("kit", "baseline"):
                results[name] = r = launch(name, server.base_url, topics, 8, warm_url)
                per_call = r["cpu"] / max(1, r["requests"]) * 1000
                rows.append(
                    [
                        str(topics),
                        name,
                        f"{r['wall']:.2f}",
                        f"{r['start']:.2f}",
                        f"{r['cpu']:.2f}",
                        f"{per_call:.2f}",
                        f"{r['peak_mib']:.0f}",
                        f"{r['requests']:,}",
                        str(r["failed"]),
                    ]
                )
        checks.append(same_requests(f"{topics} topics", results))
    columns = ["topics", "contender", "wall s", "start s", "CPU s", "CPU ms/call", "peak MiB"]
    print_table(
        "(1) CPU and memory: latency 0, at most 8 calls in flight",
        [*columns, "requests", "failed"],
        rows,
    )
    print("\n".join(checks))


def scenario_latency(sizes: Sizes, warm_url: str) -> None:
    from refine_kit.offline.server import OfflineServer

    latency, limit = sizes.latency, sizes.latency_limit
    rows, checks = [], []
    for topics in sizes.latency_topics:
        results = {}
        with OfflineServer(latency=latency) as server, tempfile.TemporaryDirectory() as cache:
            # The kit twice, as a user's first and second run on this server: the first
            # critique on a new endpoint probes its structured-output shape while the others
            # wait; the next process remembers the shape.
            for name in ("kit, new endpoint", "kit, remembered", "baseline"):
                r = launch(name, server.base_url, topics, limit, warm_url, cache_home=cache)
                results[name] = r
                chains = r["chains"] or [0]
                ideal = max(max(chains) * latency, sum(chains) * latency / limit)
                rows.append(
                    [
                        str(topics),
                        name,
                        f"{r['wall']:.2f}",
                        f"{ideal:.2f}",
                        f"{r['wall'] / ideal:.3f}" if ideal else "-",
                        f"{r['requests']:,}",
                        str(max(chains)),
                        str(r["max_in_flight"]),
                        str(r["failed"]),
                    ]
                )
        checks.append(same_requests(f"{topics} topics", results))
    columns = ["topics", "contender", "wall s", "ideal s", "wall/ideal", "requests"]
    print_table(
        f"(2) Latency bound: {latency:g} s per call, at most {limit} calls in flight",
        [*columns, "longest chain", "max in flight", "failed"],
        rows,
    )
    print("\n".join(checks))


def scenario_ratelimit(sizes: Sizes, warm_url: str) -> None:
    from refine_kit.offline.server import OfflineServer

    rpm, tpm, topics = sizes.rpm, sizes.tpm, sizes.rate_topics
    rows = []
    for name, limit, extra, headers in rate_rows(sizes):
        # A fresh server per row: every contender starts with full budgets.
        limits = {"rpm": rpm, "tpm": tpm, "limit_headers": headers}
        with OfflineServer(latency=sizes.rate_latency, **limits) as server:
            r = launch(name, server.base_url, topics, limit, warm_url, extra)
        wall, refused = r["wall"], r["statuses"].get("429", 0)
        # Useful: the calls and tokens of topics that finished (a failed topic's are wasted),
        # over the most the server could admit: a full minute at the start, then the refill.
        budget = 1 + wall / 60
        calls, tokens = sum(r["chains"]), r["useful_tokens"]
        share_r, share_t = calls / (rpm * budget), tokens / (tpm * budget)
        rows.append(
            [
                name,
                str(limit),
                f"{wall:.1f}",
                f"{r['requests']:,}",
                f"{refused:,}",
                f"{refused / max(1, r['requests']):.1%}",
                f"{topics - r['failed']}/{topics}",
                f"{calls / wall * 60:,.0f}",
                f"{share_r:.1%}",
                f"{tokens / wall * 60:,.0f}",
                f"{share_t:.1%}",
                "RPM" if share_r >= share_t else "TPM",
            ]
        )
    columns = ["contender", "concurrency", "wall s", "requests", "429s", "429 share"]
    columns += ["topics done", "useful req/min", "of RPM", "useful tok/min", "of TPM", "binding"]
    print_table(
        f"(3) Rate limited: {rpm:,} RPM and {tpm:,} TPM, {sizes.rate_latency:g} s per call, "
        f"{topics} topics",
        columns,
        rows,
    )


def first_result_baseline(url: str) -> None:
    """The plain script's whole life for one topic: import the SDK, refine, exit."""
    finished, failed = asyncio.run(baseline_batch(url, topic_names(1), 8))
    if failed or not finished:
        sys.exit("the baseline's one topic failed")


def median_seconds(command: list[str], runs: int, env: dict[str, str]) -> float:
    """Median wall time of `command`, from process start to exit, after one warm-up run."""
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    return statistics.median(times[1:])


def scenario_startup(sizes: Sizes, warm_url: str) -> None:
    from refine_kit.offline.server import OfflineServer

    runs = sizes.startup_runs
    cli = [str(Path(sys.executable).with_name("refine-kit"))]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFINE_KIT_", "OPENAI_"))}
    env |= {"DO_NOT_TRACK": "1", "NO_PROXY": "127.0.0.1"}
    rows = [
        ["refine-kit --help", "kit", f"{median_seconds([*cli, '--help'], runs, env):.2f}"],
        [
            "import refine_kit",
            "kit",
            f"{median_seconds([sys.executable, '-c', 'import refine_kit'], runs, env):.2f}",
        ],
    ]
    with OfflineServer() as server, tempfile.TemporaryDirectory() as home:
        # Flyte's cache and what the kit remembers of endpoints stay in this folder.
        env |= {"FLYTECTL_CONFIG": str(Path(home) / "config.yaml")}
        env |= {"XDG_CACHE_HOME": str(Path(home) / "cache")}
        (Path(home) / "config.yaml").write_text("{}\n")
        kit = [*cli, "run", "Heat pumps in cold climates", "--backend", "openai"]
        kit += ["--base-url", server.base_url, "--model", MODEL, "--no-cache"]
        kit += ["--output-dir", str(Path(home) / "out")]
        plain = [sys.executable, __file__, "--first-result", "--url", server.base_url]
        for name, command in (("kit", kit), ("baseline", plain)):
            seconds = median_seconds(command, runs, env)
            rows.append(["first result, 1 topic", name, f"{seconds:.2f}"])
    print_table(
        f"(4) Start-up: median of {runs} runs after a warm-up, latency 0",
        ["measure", "contender", "seconds"],
        rows,
    )


READING = """\
How to read it: each row is one contender's batch in its own process against the same
offline server. "start s" is imports (and, for the kit, a warm-up topic that pays Flyte's
start-up on another server), kept out of "wall s"; so the kit's first calls to the measured
server pay whatever the kit does on first contact with an endpoint ("new endpoint"), unless
an earlier process left what it learned in the cache folder they share ("remembered"). "CPU
ms/call" is the contender's own processor time (the server runs in this process, not theirs)
over the requests the server answered: the client-side cost of one LLM call, i.e. the kit's
Flyte tasks, traces, checkpoints and four files per topic against the bare SDK. "ideal s" is
the critical path: the longest topic's chain of calls x the latency, or all calls x latency
/ the in-flight limit if larger; 1.00 would waste nothing, and the baseline's ratio shows
what the server itself adds (its model work shares one interpreter lock). In (3), "of RPM"
and "of TPM" divide the useful work (the calls of topics that finished, and their prompt +
completion tokens as the server's usage reports them; a failed topic's calls are wasted) by
the most the server could admit over the wall time (a full minute's budget at the start plus
the refill): 100% means all of the binding limit did useful work. "429 share" is refused
requests over all requests sent. "no headers": the server enforces its limits but sends no
x-ratelimit-* headers, so the kit has only its fixed concurrency; "learned": it sends them
and the kit paces by them; "stated": the limits are given as settings."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, < 1 min")
    parser.add_argument(
        "--scenario", choices=("cpu", "latency", "ratelimit", "startup", "all"), default="all"
    )
    parser.add_argument("--contender", choices=("kit", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--topics", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--warm", help=argparse.SUPPRESS)
    parser.add_argument("--first-result", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_result:
        first_result_baseline(args.url)
        return
    if args.contender:
        run_contender(args)
        return
    sizes = QUICK if args.quick else Sizes()
    started = time.perf_counter()
    every = ("cpu", "latency", "ratelimit", "startup")
    chosen = every if args.scenario == "all" else (args.scenario,)
    scenarios = {
        "cpu": scenario_cpu,
        "latency": scenario_latency,
        "ratelimit": scenario_ratelimit,
        "startup": scenario_startup,
    }
    from refine_kit.offline.server import OfflineServer

    # The kit's warm-up topic goes here: instant, unlimited, never the measured server.
    with OfflineServer() as warm_up:
        for scenario in chosen:
            scenarios[scenario](sizes, warm_up.base_url)
    print(f"\n{READING}\n\n(all of it in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
