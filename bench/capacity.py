"""Capacity of recsync: throughput with an instant platform, Redis memory per
tracked record and the cost of reconciler passes over many pending records.

``python -m bench.capacity --out DIR`` measures and, when ``DIR/results.json``
from ``python -m bench`` exists, rewrites the report with the capacity section.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis
import yaml

from bench import infra

log = logging.getLogger(__name__)

TRACKED_RECORDS = 100_000
THROUGHPUT_RECORDINGS = 1000
THROUGHPUT_TIME_SCALE = 1.0
RAW_DRAMATIQ_MESSAGES = 10_000
ORG_ID = "org-capacity"


def _instant_scenario(out: Path, recordings: int) -> Path:
    from bench.runner import SCENARIO

    data = yaml.safe_load(SCENARIO.read_text())
    data["conversations"] = recordings
    data["duration_s"] = 1.0
    data["faults"] = []
    for org in data["orgs"]:
        org["propagation"] = {"distribution": "fixed", "value_s": 0}
        # High enough that the emulator returns no 429 in this measurement.
        org["rate_limit_per_minute"] = 1_000_000
    path = out / "scenario-instant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def measure_throughput(out: Path, *, processes: int, recordings: int) -> dict[str, Any]:
    """Measure records per second through recsync (realtime off), propagation 0."""
    from bench.runner import run_one

    scenario_path = _instant_scenario(out, recordings)
    figures = run_one(
        "recsync",
        processes,
        scenario_path=scenario_path,
        time_scale=THROUGHPUT_TIME_SCALE,
        limit_s=120.0,
        out=out / f"capacity-p{processes}",
        processes=processes,
    )
    if figures is None:
        return {"error": "run failed"}
    return {
        "ready": figures["ready"],
        "records": figures["records"],
        "elapsed_s": round(figures["elapsed_s"], 2),
        "records_per_s": round(figures["ready"] / figures["elapsed_s"], 1),
    }


def measure_raw_dramatiq(out: Path, *, processes: int, messages: int) -> dict[str, Any]:
    """Measure messages per second through a trivial actor on the same kind of broker.

    The actor increments one Redis counter per message. Messages are enqueued first
    and the clock runs from the workers' start until the counter reaches
    ``messages``, so worker boot (about a second) is included, as it is in the
    recsync rows.
    """
    process, url = infra.start_redis(out)
    workers = None
    try:
        env = {**os.environ, "BENCH_REDIS_URL": url}
        os.environ["BENCH_REDIS_URL"] = url
        from bench import noop_actor

        noop_actor = importlib.reload(noop_actor)
        client = redis.Redis.from_url(url)
        for index in range(messages):
            noop_actor.noop.send(index)
        started = time.perf_counter()
        workers = infra.spawn(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "bench.noop_actor",
                "--processes",
                str(processes),
                "--threads",
                "8",
            ],
            log_path=out / f"noop-p{processes}.log",
            env=env,
        )
        deadline = started + 120.0
        done = 0
        while time.perf_counter() < deadline:
            done = int(client.get(noop_actor.COUNTER_KEY) or 0)
            if done >= messages:
                break
            time.sleep(0.02)
        elapsed_s = time.perf_counter() - started
        return {
            "messages": messages,
            "done": done,
            "elapsed_s": round(elapsed_s, 2),
            "messages_per_s": round(done / elapsed_s, 1),
        }
    finally:
        if workers is not None:
            infra.stop(workers)
        infra.stop(process)


def measure_store(out: Path, *, records: int) -> dict[str, Any]:
    """Measure Redis bytes per tracked record and reconciler pass times.

    NOTE: a pass is timed around ``RecordStore.take_overdue`` only; sending the
    fetch messages for the records it returns is not included.
    """
    from recsync.actors.reconcile import PASS_LIMIT
    from recsync.store import RecordStore

    process, url = infra.start_redis(out)
    try:
        client = redis.Redis.from_url(url)
        store = RecordStore(client)
        before = int(client.info("memory")["used_memory"])
        started = time.perf_counter()
        for index in range(records):
            store.track(
                ORG_ID,
                f"conversation-{index // 2}",
                f"recording-{index}",
                deadline_s=3600.0,
                user_id="user-1",
            )
        track_s = time.perf_counter() - started
        after = int(client.info("memory")["used_memory"])
        pass_ms = []
        taken = 0
        while True:
            started = time.perf_counter()
            ids = store.take_overdue(ORG_ID, limit=PASS_LIMIT, grace_s=60.0)
            pass_ms.append((time.perf_counter() - started) * 1000)
            taken += len(ids)
            if not ids:
                break
        return {
            "tracked_records": records,
            "redis_bytes_per_record": round((after - before) / records),
            "track_calls_per_s": round(records / track_s),
            "reconciler_pass_limit": PASS_LIMIT,
            "reconciler_passes": len(pass_ms) - 1,
            "reconciler_pass_ms_median": round(statistics.median(pass_ms[:-1]), 1),
            "reconciler_pass_ms_max": round(max(pass_ms[:-1]), 1),
            "reconciler_records_taken": taken,
        }
    finally:
        infra.stop(process)


def measure_capacity(
    *, out: Path, recordings: int = THROUGHPUT_RECORDINGS
) -> dict[str, Any]:
    """Run every capacity measurement; return flat JSON-ready figures."""
    out = out / "capacity"
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for processes in (1, 2):
        figures = measure_throughput(out, processes=processes, recordings=recordings)
        for key, value in figures.items():
            result[f"instant platform, {processes} worker process(es): {key}"] = value
        baseline = measure_raw_dramatiq(
            out, processes=processes, messages=RAW_DRAMATIQ_MESSAGES
        )
        for key, value in baseline.items():
            result[f"trivial Dramatiq actor, {processes} worker process(es): {key}"] = (
                value
            )
        recsync_rate = figures.get("records_per_s")
        if recsync_rate and baseline["messages_per_s"]:
            result[f"recsync / trivial actor, {processes} worker process(es)"] = round(
                recsync_rate / baseline["messages_per_s"], 3
            )
    for key, value in measure_store(out, records=TRACKED_RECORDS).items():
        result[key] = value
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure capacity and rewrite the report from a finished benchmark run."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.capacity")
    parser.add_argument("--out", type=Path, required=True, help="benchmark --out dir")
    parser.add_argument("--recordings", type=int, default=THROUGHPUT_RECORDINGS)
    args = parser.parse_args(argv)
    capacity = measure_capacity(out=args.out, recordings=args.recordings)
    print(json.dumps(capacity, indent=2))
    results_path = args.out / "results.json"
    if results_path.exists():
        from bench.runner import rewrite_report

        saved = json.loads(results_path.read_text())
        saved["capacity"] = capacity
        command = " ".join(["python -m bench.capacity", *(argv or sys.argv[1:])])
        saved["meta"]["capacity_command"] = command
        results_path.write_text(json.dumps(saved))
        rewrite_report(results_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
