"""``python -m bench``: run every strategy on the shared scenario and report.

Each (run, strategy) pair is one ``bench.drive`` subprocess with a fresh
redis-server and a fresh emulator. Figures are the median of the runs with min
and max beside them; ratios against recsync are taken within each run first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.strategies import NAMES

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = Path(__file__).with_name("scenario.yaml")
# 0.1 keeps a 2,000-recording run near 75 s wall per strategy. At 0.05 a 2-core
# machine saturated, so the lags measured the machine rather than the strategy.
DEFAULT_TIME_SCALE = 0.1
# Smoke runs are dominated by process start-up, so a faster clock keeps them short.
SMOKE_TIME_SCALE = 0.05
DEFAULT_RECORDS = 2000
SMOKE_RECORDS = 10
# Conversations are created uniformly over duration_s; keeping duration_s at 0.3 s
# per recording keeps the creation rate of the 2,000-recording scenario.
DURATION_PER_RECORDING_S = 0.3
# Platform seconds a run may take after the last recording is created.
TAIL_S = 600.0
SMOKE_TAIL_S = 120.0
DRIVE_GRACE_S = 90.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark recsync against SDK, Celery and Dramatiq baselines.",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per strategy")
    parser.add_argument(
        "--records",
        type=int,
        default=DEFAULT_RECORDS,
        help="recordings created in the primary (each is synced to every org)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help=f"wall seconds per platform second [default: {DEFAULT_TIME_SCALE}, "
        f"{SMOKE_TIME_SCALE} with --smoke]",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_RECORDS} recordings, 1 run, no capacity section",
    )
    parser.add_argument(
        "--strategies",
        default=",".join(NAMES),
        help=f"comma-separated subset of {','.join(NAMES)}",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "out", help="scratch directory"
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="where BENCHMARKS.md and the plots go [default: the repository for "
        "full runs, --out for --smoke]",
    )
    parser.add_argument(
        "--capacity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure recsync capacity (skipped with --smoke)",
    )

    args = parser.parse_args(argv)
    if args.time_scale is None:
        args.time_scale = SMOKE_TIME_SCALE if args.smoke else DEFAULT_TIME_SCALE
    if args.smoke:
        args.records = SMOKE_RECORDS
        args.runs = 1
        args.capacity = False
    if args.runs < 1 or args.records < 1 or args.time_scale <= 0:
        parser.error("--runs and --records must be at least 1, --time-scale above 0")
    unknown = set(args.strategies.split(",")) - set(NAMES)
    if unknown:
        parser.error(f"unknown strategies {sorted(unknown)}; use {','.join(NAMES)}")
    return args


def write_scenario(records: int, out: Path) -> tuple[Path, dict[str, Any]]:
    """Write the shared scenario resized to ``records`` recordings."""
    data = yaml.safe_load(SCENARIO.read_text())
    if records != DEFAULT_RECORDS:
        data["conversations"] = records
        data["duration_s"] = max(records * DURATION_PER_RECORDING_S, 1.0)
    path = out / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, data


def run_one(
    strategy: str,
    run: int,
    *,
    scenario_path: Path,
    time_scale: float,
    limit_s: float,
    out: Path,
    processes: int = 1,
) -> dict[str, Any] | None:
    """Drive one strategy once in a subprocess; return its figures or None."""
    work_dir = out / f"run{run}" / strategy
    work_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "strategy": strategy,
        "scenario_path": str(scenario_path),
        "time_scale": time_scale,
        "work_dir": str(work_dir),
        "result_path": str(work_dir / "figures.json"),
        "limit_s": limit_s,
        "processes": processes,
    }
    config_path = work_dir / "config.json"
    config_path.write_text(json.dumps(config))

    started = time.monotonic()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "bench.drive", str(config_path)],
            cwd=ROOT,
            timeout=limit_s + DRIVE_GRACE_S,
            capture_output=True,
            text=True,
        )
    except subprocess.TimeoutExpired:
        log.error("%s run %d timed out; see %s", strategy, run, work_dir)
        return None
    (work_dir / "drive.log").write_text(completed.stdout + completed.stderr)

    if completed.returncode != 0:
        log.error(
            "%s run %d failed (exit %d); see %s",
            strategy,
            run,
            completed.returncode,
            work_dir / "drive.log",
        )
        return None
    figures: dict[str, Any] = json.loads((work_dir / "figures.json").read_text())
    log.info(
        "%s run %d: %d/%d ready in %.1f s",
        strategy,
        run,
        figures["ready"],
        figures["records"],
        time.monotonic() - started,
    )
    return figures


def rewrite_report(results_path: Path) -> Path:
    """Write BENCHMARKS.md and the plots from a saved ``results.json``."""
    from bench.report import write_report

    saved = json.loads(results_path.read_text())
    meta = saved["meta"]
    return write_report(
        saved["results"],
        capacity=saved.get("capacity"),
        scenario=meta["scenario"],
        time_scale=meta["time_scale"],
        runs=meta["runs"],
        command=meta["command"],
        wall_s=meta["wall_s"],
        report_dir=Path(meta["report_dir"]),
        capacity_command=meta.get("capacity_command"),
        load_averages=(meta.get("load_average_before"), meta.get("load_average_after")),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the report; return the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    report_dir = args.report_dir or (out if args.smoke else ROOT)
    scenario_path, scenario = write_scenario(args.records, out)
    tail_s = SMOKE_TAIL_S if args.smoke else TAIL_S
    limit_s = max(30.0, (scenario["duration_s"] + tail_s) * args.time_scale)
    strategies = args.strategies.split(",")
    results: dict[str, list[dict[str, Any] | None]] = {name: [] for name in strategies}
    started = time.monotonic()
    load_before = os.getloadavg()
    partial_path = out / "results-partial.json"
    for run in range(args.runs):
        for name in strategies:
            results[name].append(
                run_one(
                    name,
                    run,
                    scenario_path=scenario_path,
                    time_scale=args.time_scale,
                    limit_s=limit_s,
                    out=out,
                )
            )
            # Saved after every run so an interrupted benchmark keeps its figures.
            partial_path.write_text(json.dumps({"results": results}))
    capacity = None
    if args.capacity:
        from bench.capacity import measure_capacity

        capacity = measure_capacity(out=out)
    meta = {
        "scenario": scenario,
        "time_scale": args.time_scale,
        "runs": args.runs,
        "command": " ".join(
            ["python -m bench", *(sys.argv[1:] if argv is None else argv)]
        ),
        "wall_s": time.monotonic() - started,
        "report_dir": str(report_dir),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
    }
    results_path = out / "results.json"
    results_path.write_text(
        json.dumps({"results": results, "capacity": capacity, "meta": meta})
    )
    rewrite_report(results_path)
    failed = [name for name, runs in results.items() if any(r is None for r in runs)]
    if failed:
        log.error("runs failed for %s", ", ".join(failed))
        return 1
    return 0
