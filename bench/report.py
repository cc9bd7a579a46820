"""BENCHMARKS.md and the plots under ``docs/bench/``, from the runs' figures."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.strategies import LABELS

REFERENCE = "recsync-realtime"

Row = tuple[str, str, Callable[[dict[str, Any], float], float | None], str]


def _get(key: str) -> Callable[[dict[str, Any], float], float | None]:
    def read(figures: dict[str, Any], scale: float) -> float | None:
        value = figures.get(key)
        return None if value is None else float(value)

    return read


def _wait_platform_s(figures: dict[str, Any], scale: float) -> float | None:
    return float(figures["wait_s_per_record"]) / scale


ROWS: list[Row] = [
    ("records", "records (recording x org)", _get("records"), "{:.0f}"),
    ("ready", "records ready", _get("ready"), "{:.0f}"),
    ("lost", "records lost (not ready at the end)", _get("lost"), "{:.0f}"),
    ("lag_p50_s", "propagation to ready p50 (platform s)", _get("lag_p50_s"), "{:.1f}"),
    ("lag_p95_s", "propagation to ready p95 (platform s)", _get("lag_p95_s"), "{:.1f}"),
    ("lag_p99_s", "propagation to ready p99 (platform s)", _get("lag_p99_s"), "{:.1f}"),
    (
        "calls_per_record",
        "platform calls per record",
        _get("calls_per_record"),
        "{:.2f}",
    ),
    ("timeouts_408", "408 responses", _get("timeouts_408"), "{:.0f}"),
    ("rate_limited_429", "429 responses", _get("rate_limited_429"), "{:.0f}"),
    (
        "wait",
        "worker thread time waiting on the platform per record (platform s)",
        _wait_platform_s,
        "{:.2f}",
    ),
    (
        "peak_rss_mb",
        "peak RSS of the largest worker process (MiB)",
        _get("peak_rss_mb"),
        "{:.0f}",
    ),
    ("ui_read_p50_ms", "UI read p50 (ms)", _get("ui_read_p50_ms"), "{:.2f}"),
    ("ui_read_p99_ms", "UI read p99 (ms)", _get("ui_read_p99_ms"), "{:.2f}"),
    ("elapsed_s", "wall time of the run (s)", _get("elapsed_s"), "{:.1f}"),
]
RATIO_ROWS = (
    "lag_p50_s",
    "lag_p95_s",
    "lag_p99_s",
    "calls_per_record",
    "wait",
    "peak_rss_mb",
)

HEADER = """\
# Benchmarks

How five ways of keeping recording metadata in sync behave on the same emulated
Genesys Cloud workload. `python -m bench` (`make bench`) generates this page; only
this header is written by hand.

## Method

- Each (run, strategy) pair starts fresh: its own emulator (`python -m
  recsync.emulator` in a subprocess, so it shares no GIL with the strategy) and its
  own redis-server on a free loopback port.
- The driver announces each recording to every org when the primary has it (times
  from `/_emulator/timeline`), as the integration host does.
- The emulator runs on a scaled clock. Backoffs, holds and deadlines of every
  strategy scale with it, and latencies are in platform seconds:
  (ready wall time - visible wall time) / scale.
- Platform calls, 408s and 429s come from `/_emulator/stats` and include OAuth and
  notification requests. Thread time waiting on the platform is measured around
  each call by the worker (recsync's own `platform_wait_s` counter for recsync).
- A reader thread in the driver reads a random announced record every 5 ms during
  the run: `RecordStore.get` for recsync, a Redis GET of the result key for the
  others.
- Peak RSS is sampled with psutil every 0.25 s over each worker process tree; the
  table shows the largest process.
- Strategies: (a) the official SDK (`PureCloudPlatformClientV2`) calling
  `get_conversation_recordingmetadata_recording_id` without `maxWaitMs` from 8
  threads, with urllib3 defaults, sleeping `Retry-After` on 429; (b) a Celery task
  with `autoretry_for`, `retry_backoff=5`, `retry_backoff_max=30`,
  `retry_jitter=True`, threads pool of 8; (c) a Dramatiq actor with the Retries
  middleware (5 s to 30 s backoff), 8 threads; (d) recsync, realtime off; (e)
  recsync, realtime on. (b) and (c) call with `maxWaitMs=0` and retry on any
  non-200 response, up to 20 retries.
- Capacity: recsync (realtime off) with propagation 0 and no effective rate limit
  at time scale 1.0, with 1 and 2 worker processes; Redis `used_memory` before and
  after 100,000 `RecordStore.track` calls; and the time of each reconciler
  `take_overdue` pass (5,000 records) over those 100,000 due records.
- NOTE: the machine is shared, so other processes load the CPUs during the runs
  (see the load averages below). Compare strategies within one run, as the ratio
  table does, rather than absolute numbers across machines.
- NOTE: the emulator's clock starts before the driver reads the timeline, so
  recordings created in its first wall second are announced late, alike for every
  strategy.
"""


def _summary(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    median = fmt.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _machine(load_averages: tuple[Any, Any]) -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"- CPUs (`nproc`): {os.cpu_count()}",
        f"- CPU model: {model}",
        f"- Python: {platform.python_version()} on {platform.platform()}",
        f"- load average (1, 5, 15 min) before the runs: {_loads(load_averages[0])}, "
        f"after: {_loads(load_averages[1])}",
    ]


def _loads(values: Any) -> str:
    if not values:
        return "n/a"
    return "/".join(f"{value:.1f}" for value in values)


def _scenario_lines(scenario: dict[str, Any], time_scale: float) -> list[str]:
    orgs = scenario["orgs"]
    faults = scenario.get("faults", [])
    lines = [
        f"- {scenario['conversations']} recordings created in the primary over "
        f"{scenario['duration_s']:.0f} platform s, each synced to {len(orgs)} orgs",
        f"- time scale {time_scale} (wall s per platform s)",
    ]
    for org in orgs:
        prop = org["propagation"]
        if prop.get("distribution") == "lognormal":
            spread = f"lognormal median {prop['median_s']} s, p99 {prop['p99_s']} s"
        else:
            spread = f"fixed {prop.get('value_s', 0)} s"
        lines.append(
            f"- {org['id']} ({org['role']}): propagation {spread}, "
            f"{org.get('rate_limit_per_minute', 300)} requests per minute"
        )
    for fault in faults:
        lines.append(
            f"- fault `{fault['kind']}` on {fault['org']}, ratio {fault['ratio']}"
        )
    return lines


def _table(
    results: dict[str, list[dict[str, Any] | None]], time_scale: float
) -> list[str]:
    names = list(results)
    lines = [
        "| figure | " + " | ".join(LABELS[name] for name in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for _key, label, read, fmt in ROWS:
        cells = []
        for name in names:
            values = [
                v
                for figures in results[name]
                if figures is not None and (v := read(figures, time_scale)) is not None
            ]
            cells.append(_summary(values, fmt))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _ratio_table(
    results: dict[str, list[dict[str, Any] | None]], time_scale: float
) -> list[str]:
    if REFERENCE not in results:
        return []
    names = [name for name in results if name != REFERENCE]
    lines = [
        f"Each cell is strategy / {LABELS[REFERENCE]} within the same run; median "
        "(min-max) over runs.",
        "",
        "| figure | " + " | ".join(LABELS[name] for name in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    rows = {key: (label, read) for key, label, read, _fmt in ROWS}
    for key in RATIO_ROWS:
        label, read = rows[key]
        cells = []
        for name in names:
            ratios = []
            for mine, ref in zip(results[name], results[REFERENCE], strict=False):
                if mine is None or ref is None:
                    continue
                top, bottom = read(mine, time_scale), read(ref, time_scale)
                if top is not None and bottom:
                    ratios.append(top / bottom)
            cells.append(_summary(ratios, "{:.2f}x"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _capacity_lines(capacity: dict[str, Any] | None) -> list[str]:
    if not capacity:
        return ["Not measured in this run (`--no-capacity` or `--smoke`)."]
    lines = [
        "Throughput rows run recsync (realtime off) on an instant platform: "
        "propagation 0, and a budget of 1,000,000 requests per minute per org in both "
        "the emulator and the manifest, so the workers are the limit. The trivial "
        "Dramatiq actor rows run on the same machine in the same run, as the "
        "baseline: one Redis increment per message.",
        "",
    ]
    for key, value in capacity.items():
        lines.append(f"- {key}: {value}")
    return lines


def plot(
    results: dict[str, list[dict[str, Any] | None]], plots_dir: Path
) -> list[Path]:
    """Draw the lag distribution and platform calls over time; return the files."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    lag_path = plots_dir / "propagation-to-ready.png"
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, runs in results.items():
        lags = sorted(lag for figures in runs if figures for lag in figures["lags_s"])
        if lags:
            shares = [(i + 1) / len(lags) for i in range(len(lags))]
            axes.step(lags, shares, where="post", label=LABELS[name])
    axes.set_xscale("symlog", linthresh=1.0)
    axes.set_xlabel("time from propagation to ready (platform s)")
    axes.set_ylabel("share of ready records")
    axes.set_title("Distribution of time from propagation to ready (all runs)")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(lag_path, dpi=110)
    plt.close(figure)

    calls_path = plots_dir / "platform-calls.png"
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, runs in results.items():
        first = next((figures for figures in runs if figures), None)
        if first and first["calls_series"]:
            xs = [point[0] for point in first["calls_series"]]
            ys = [point[1] for point in first["calls_series"]]
            axes.plot(xs, ys, label=LABELS[name])
    axes.set_xlabel("platform time (s)")
    axes.set_ylabel("platform requests so far")
    axes.set_title("Platform calls over time (first run)")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(calls_path, dpi=110)
    plt.close(figure)
    return [lag_path, calls_path]


def write_report(
    results: dict[str, list[dict[str, Any] | None]],
    *,
    capacity: dict[str, Any] | None,
    scenario: dict[str, Any],
    time_scale: float,
    runs: int,
    command: str,
    wall_s: float,
    report_dir: Path,
    load_averages: tuple[Any, Any] = (None, None),
    capacity_command: str | None = None,
) -> Path:
    """Write BENCHMARKS.md and the plots into ``report_dir``; return the file."""
    plots = plot(results, report_dir / "docs" / "bench")
    lines = [HEADER, "## Scenario", "", *_scenario_lines(scenario, time_scale), ""]
    lines += ["## Machine", "", *_machine(load_averages), ""]
    lines += [
        "## Command",
        "",
        f"`{command}`: {runs} run(s) per strategy, {wall_s:.0f} s wall in total.",
        "",
    ]
    if capacity_command:
        lines += [f"Capacity section: `{capacity_command}`.", ""]
    lines += [
        "## Results",
        "",
        "Median over runs, (min-max) beside it.",
        "",
        *_table(results, time_scale),
        "",
    ]
    lines += ["## Ratios against recsync", "", *_ratio_table(results, time_scale), ""]
    lines += ["## Capacity", "", *_capacity_lines(capacity), ""]
    lines += ["## Plots", ""]
    for path in plots:
        lines.append(f"![{path.stem}](docs/bench/{path.name})")
    lines.append("")
    target = report_dir / "BENCHMARKS.md"
    target.write_text("\n".join(lines))
    return target
