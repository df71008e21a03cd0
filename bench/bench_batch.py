"""How close does a batch get to the ideal time for its work, and what memory does it need?

Runs offline batches (cache off, no retries needed) each in a fresh subprocess so its peak
memory is its own, and prints one row per scenario:

- calls: LLM calls the offline model served (counted at the model);
- ideal: the shortest possible wall time for those calls under the in-flight limit. Each
  topic's calls run one after another, so it is the larger of (all calls x latency / limit)
  and (the longest topic's calls x latency);
- ratio: wall / ideal (1.00 is perfect; the target is <= 1.10);
- CPU s: processor time the batch used (the event loop is one thread);
- first run s: a one-topic warm-up run before the batch, which pays Flyte's start-up;
- peak MiB: the subprocess's maximum resident memory.

    python bench/bench_batch.py                 # the standard scenarios
    python bench/bench_batch.py --topics 20 --latency 0.2 --limit 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

STANDARD = [(5, 0.5, 8), (50, 0.5, 8), (1000, 0.0, 8)]


def run_one(topics: int, latency: float, limit: int) -> dict:
    """One scenario, in this process: meant to run in a fresh subprocess."""
    import refine_kit
    from refine_kit.offline.transport import offline_stats

    names = [f"Benchmark topic {i}: the economics of item {i}" for i in range(topics)]
    with tempfile.TemporaryDirectory() as out:
        # The first run in a process pays Flyte's start-up once; time it on its own.
        started = time.perf_counter()
        refine_kit.refine("Warm-up topic", output_dir=out, offline_latency=0, cache=False)
        cold = time.perf_counter() - started
        offline_stats.reset()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        started = time.perf_counter()
        batch = refine_kit.refine_batch(
            names,
            output_dir=out,
            offline_latency=latency,
            max_concurrency=limit,
            cache=False,
        )
        wall = time.perf_counter() - started
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu_before
    chains = [len(o.result.calls) for o in batch.outcomes if o.result]
    ideal = max(sum(chains) * latency / limit, max(chains) * latency) if latency else 0.0
    return {
        "topics": topics,
        "latency": latency,
        "limit": limit,
        "failed": len(batch.failed),
        "calls": offline_stats.calls,
        "max_in_flight": offline_stats.max_in_flight,
        "wall": wall,
        "cpu": cpu,
        "cold": cold,
        "ideal": ideal,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_isolated(topics: int, latency: float, limit: int) -> dict:
    """Run a scenario in a subprocess with its own Flyte cache directory."""
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "config.yaml"
        config.write_text("{}\n")
        env = {**os.environ, "FLYTECTL_CONFIG": str(config), "DO_NOT_TRACK": "1"}
        env.pop("OPENAI_API_KEY", None)
        args = [sys.executable, __file__, "--one", str(topics), str(latency), str(limit)]
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--one", nargs=3, metavar=("TOPICS", "LATENCY", "LIMIT"), help="internal")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(int(args.one[0]), float(args.one[1]), int(args.one[2]))))
        return
    scenarios = [(args.topics, args.latency, args.limit)] if args.topics else STANDARD

    table = Table(title="refine_kit batch benchmark (offline model, cache off)")
    for column in ("topics", "latency s", "limit", "calls", "max in flight", "failed"):
        table.add_column(column, justify="right")
    for column in ("wall s", "ideal s", "ratio", "CPU s", "first run s", "peak MiB"):
        table.add_column(column, justify="right")
    for topics, latency, limit in scenarios:
        row = run_isolated(topics, latency, limit)
        ratio = f"{row['wall'] / row['ideal']:.3f}" if row["ideal"] else "-"
        table.add_row(
            str(row["topics"]),
            f"{row['latency']:g}",
            str(row["limit"]),
            str(row["calls"]),
            str(row["max_in_flight"]),
            str(row["failed"]),
            f"{row['wall']:.2f}",
            f"{row['ideal']:.2f}" if row["ideal"] else "-",
            ratio,
            f"{row['cpu']:.2f}",
            f"{row['cold']:.2f}",
            f"{row['peak_mib']:.0f}",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
