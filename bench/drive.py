"""One strategy, one run: ``python -m bench.drive CONFIG.json``.

Each run is its own process, so the global state of Celery, Dramatiq and recsync
(brokers, runtimes) of one strategy is gone before the next starts. The driver
starts redis-server, the strategy's workers and then the emulator, announces
every record when the primary has it, reads records back like a UI, samples the
workers' RSS and the emulator's request counters, and writes the figures as JSON.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import psutil

from bench import infra
from bench.strategies import Strategy, make_strategy

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S = 60.0
SAMPLE_INTERVAL_S = 0.25
UI_READ_INTERVAL_S = 0.005


@attrs.frozen
class RunConfig:
    """Configuration of one driver run, written as JSON by the runner."""

    strategy: str
    scenario_path: str
    time_scale: float
    work_dir: str
    result_path: str
    limit_s: float
    processes: int = 1


def percentile(values: list[float], share: float) -> float | None:
    """Return the ``share`` quantile (0..1) with inclusive interpolation."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[round(share * 100) - 1]


class Sampler:
    """Background threads: UI reads, worker RSS and emulator request counts."""

    def __init__(
        self,
        strategy: Strategy,
        workers: list[Any],
        base_url: str,
        time_scale: float,
        wall_start: float,
    ) -> None:
        self.strategy = strategy
        self.workers = workers
        self.base_url = base_url
        self.time_scale = time_scale
        self.wall_start = wall_start
        self.announced: list[tuple[str, str]] = []
        self.read_ms: list[float] = []
        self.peak_rss: dict[int, int] = {}
        self.calls_series: list[tuple[float, int]] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._read_loop, daemon=True),
            threading.Thread(target=self._sample_loop, daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)

    def _read_loop(self) -> None:
        rng = random.Random(3)
        while not self.stopping.is_set():
            if self.announced:
                org_id, recording_id = rng.choice(self.announced)
                started = time.perf_counter()
                self.strategy.read(org_id, recording_id)
                self.read_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(UI_READ_INTERVAL_S)

    def _sample_rss(self) -> None:
        for worker in self.workers:
            try:
                root = psutil.Process(worker.pid)
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in processes:
                try:
                    rss = process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                self.peak_rss[process.pid] = max(self.peak_rss.get(process.pid, 0), rss)

    def _sample_calls(self, client: httpx.Client) -> None:
        try:
            stats = client.get("/_emulator/stats").json()
        except httpx.HTTPError:
            return
        platform_s = (time.time() - self.wall_start) / self.time_scale
        self.calls_series.append((platform_s, total_requests(stats)))

    def _sample_loop(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while not self.stopping.is_set():
                self._sample_rss()
                self._sample_calls(client)
                time.sleep(SAMPLE_INTERVAL_S)


def total_requests(stats: dict[str, Any]) -> int:
    """Sum the emulator's request counts over orgs, routes and statuses."""
    return sum(
        count
        for org in stats.values()
        for statuses in org["requests"].values()
        for count in statuses.values()
    )


def announce_all(
    strategy: Strategy,
    timeline: list[dict[str, Any]],
    org_ids: list[str],
    primary: str,
    *,
    wall_start: float,
    time_scale: float,
    sampler: Sampler,
    stopping: threading.Event,
) -> None:
    """Announce each recording to every org once the primary has it."""
    entries = sorted(
        (e for e in timeline if e["org"] == primary), key=lambda e: e["visible_at_s"]
    )
    for entry in entries:
        wait_s = wall_start + entry["visible_at_s"] * time_scale - time.time()
        if wait_s > 0 and stopping.wait(wait_s):
            return
        for org_id in org_ids:
            strategy.announce(
                org_id,
                entry["conversation_id"],
                entry["recording_id"],
                entry["user_id"],
            )
            sampler.announced.append((org_id, entry["recording_id"]))


def _start_workers(strategy: Strategy, work_dir: Path) -> list[Any]:
    workers = []
    for index, command in enumerate(strategy.worker_commands()):
        log_path = work_dir / f"worker-{strategy.name}-{index}.log"
        workers.append(infra.spawn(command, log_path=log_path))
        if not infra.wait_for_marker(
            log_path, strategy.ready_marker, timeout_s=WORKER_START_TIMEOUT_S
        ):
            raise RuntimeError(
                f"{strategy.name} worker did not print {strategy.ready_marker!r} "
                f"within {WORKER_START_TIMEOUT_S:.0f} s; see {log_path}"
            )
    return workers


def drive(config: RunConfig) -> dict[str, Any]:
    """Run one strategy once and return its figures."""
    from recsync.emulator import load_scenario

    work_dir = Path(config.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    scenario = load_scenario(config.scenario_path)
    redis_process, redis_url = infra.start_redis(work_dir)
    port = infra.free_port()
    base_url = f"http://127.0.0.1:{port}"
    strategy = make_strategy(
        config.strategy,
        redis_url=redis_url,
        base_url=base_url,
        scenario=scenario,
        processes=config.processes,
    )
    processes: list[Any] = [redis_process]
    try:
        strategy.configure(time_scale=config.time_scale, work_dir=work_dir)
        workers = _start_workers(strategy, work_dir)
        processes = [*workers, redis_process]
        emulator = infra.start_emulator(
            Path(config.scenario_path),
            time_scale=config.time_scale,
            port=port,
            log_dir=work_dir,
        )
        processes.insert(0, emulator)
        return _measure(config, strategy, workers, base_url, scenario)
    finally:
        strategy.close()
        for process in processes:
            infra.stop(process)


def _measure(
    config: RunConfig,
    strategy: Strategy,
    workers: list[Any],
    base_url: str,
    scenario: Any,
) -> dict[str, Any]:
    scale = config.time_scale
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        before = time.time()
        clock = client.get("/_emulator/clock").json()
        wall_start = (before + time.time()) / 2 - clock["now_s"] * scale
        timeline = client.get("/_emulator/timeline").json()

    strategy.after_emulator()
    org_ids = [org.id for org in scenario.orgs]
    sampler = Sampler(strategy, workers, base_url, scale, wall_start)
    sampler.start()
    stopping = threading.Event()
    announcer = threading.Thread(
        target=announce_all,
        args=(strategy, timeline, org_ids, scenario.primary.id),
        kwargs={
            "wall_start": wall_start,
            "time_scale": scale,
            "sampler": sampler,
            "stopping": stopping,
        },
        daemon=True,
    )

    started = time.monotonic()
    announcer.start()
    total = len(timeline)
    deadline = started + config.limit_s
    while time.monotonic() < deadline:
        if strategy.settled_count() >= total:
            break
        time.sleep(0.25)
    else:
        log.warning("%s: stopped waiting after %.0f s", strategy.name, config.limit_s)
    elapsed_s = time.monotonic() - started

    stopping.set()
    announcer.join(timeout=5)
    sampler.stop()
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        stats = client.get("/_emulator/stats").json()
    return _figures(
        strategy, timeline, stats, sampler, wall_start, scale, elapsed_s, len(workers)
    )


def _figures(
    strategy: Strategy,
    timeline: list[dict[str, Any]],
    stats: dict[str, Any],
    sampler: Sampler,
    wall_start: float,
    scale: float,
    elapsed_s: float,
    worker_count: int,
) -> dict[str, Any]:
    pairs = [(e["org"], e["recording_id"]) for e in timeline]
    visible = {
        (e["org"], e["recording_id"]): wall_start + e["visible_at_s"] * scale
        for e in timeline
    }
    ready = strategy.ready_times(pairs)
    lags = sorted(max(ready[p] - visible[p], 0.0) / scale for p in ready)
    records = len(timeline)
    calls = total_requests(stats)
    wait_s = strategy.platform_wait_s()
    return {
        "strategy": strategy.name,
        "records": records,
        "ready": len(ready),
        "lost": records - len(ready),
        "lag_p50_s": percentile(lags, 0.50),
        "lag_p95_s": percentile(lags, 0.95),
        "lag_p99_s": percentile(lags, 0.99),
        "calls": calls,
        "calls_per_record": calls / records if records else 0.0,
        "timeouts_408": sum(int(org["timeouts_408"]) for org in stats.values()),
        "rate_limited_429": sum(int(org["rate_limited_429"]) for org in stats.values()),
        "wait_s_per_record": wait_s / records if records else 0.0,
        "peak_rss_mb": max(sampler.peak_rss.values(), default=0) / 2**20,
        "worker_processes": len(sampler.peak_rss),
        "ui_read_p50_ms": percentile(sampler.read_ms, 0.50),
        "ui_read_p99_ms": percentile(sampler.read_ms, 0.99),
        "ui_reads": len(sampler.read_ms),
        "elapsed_s": elapsed_s,
        "lags_s": lags,
        "calls_series": sampler.calls_series,
        "launched_workers": worker_count,
    }


def main(argv: list[str] | None = None) -> int:
    """Read the run config, drive the strategy and write its figures."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.drive CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    config = RunConfig(**json.loads(Path(args[0]).read_text()))
    figures = drive(config)
    Path(config.result_path).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
