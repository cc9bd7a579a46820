"""The ``recsync`` command."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

import attrs
import click
from rich.console import Console
from rich.table import Table

from recsync.errors import ManifestError

log = logging.getLogger(__name__)
err_console = Console(stderr=True)

# Below this the policies' timers fall under a millisecond, which Redis TTLs cannot
# express; above it a demo would run for days.
MIN_TIME_SCALE = 0.01
MAX_TIME_SCALE = 10.0


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group()
@click.option(
    "--log-level",
    default="warning",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Level of the log lines written to standard error.",
)
@click.version_option(package_name="appfoundry-recsync")
def main(log_level: str) -> None:
    """Keep Genesys Cloud recording metadata in sync across orgs without blocking."""
    _configure_logging(log_level)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the worker group's leader when this supervisor dies.

    The workers run in their own session (so a terminal's Ctrl-C reaches only the
    supervisor), which also means a supervisor killed with SIGKILL would leave them
    running. ``prctl(PR_SET_PDEATHSIG)`` closes that gap; elsewhere it is skipped.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        return


def _check_url(url: str, *, option: str) -> None:
    """Exit 2 with a clear message when a broker or Redis URL is unusable."""
    from recsync.actors.broker import redact_url

    schemes: tuple[str, ...] = ("redis://", "rediss://", "unix://")
    if option == "--broker":
        schemes += ("amqp://", "amqps://")
    if not url.startswith(schemes):
        click.echo(
            f"recsync: {option} {redact_url(url)!r} is not supported; use "
            + " or ".join(f"{scheme}..." for scheme in schemes),
            err=True,
        )
        sys.exit(2)


def _time_scale(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value) or not MIN_TIME_SCALE <= value <= MAX_TIME_SCALE:
        raise click.BadParameter(
            f"{value} is out of range; use a number from {MIN_TIME_SCALE} to "
            f"{MAX_TIME_SCALE} (wall seconds per platform second)"
        )
    return value


@main.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
def check(manifest: str) -> None:
    """Validate MANIFEST; print every problem and exit 2, or a summary and exit 0."""
    from recsync.manifest import load_manifest, summarize

    try:
        loaded = load_manifest(manifest)
    except ManifestError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    click.echo(summarize(loaded))


@main.command()
@click.option(
    "--manifest",
    "manifest_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Manifest file the workers load.",
)
@click.option(
    "--broker",
    "broker_url",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="Broker URL: redis://HOST:PORT/DB or amqp://USER:PASSWORD@HOST:PORT/.",
)
@click.option(
    "--redis",
    "redis_url",
    default=None,
    help="Redis URL for record state [default: the broker URL when it is Redis,"
    " else redis://127.0.0.1:6379/0].",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker processes.",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Worker threads per process.",
)
@click.option(
    "--shutdown-timeout",
    "shutdown_timeout_s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a worker process waits on SIGTERM for running messages before it"
    " requeues what it holds and exits.",
)
def worker(
    manifest_path: str,
    broker_url: str,
    redis_url: str | None,
    processes: int,
    threads: int,
    shutdown_timeout_s: float,
) -> None:
    """Run Dramatiq worker processes for recsync's actors, and supervise them.

    Exits 0 after SIGTERM or SIGINT once the workers have drained, and non-zero when
    the workers end without a stop request (a worker process died or failed to boot),
    so a process manager restarts the whole group.
    """
    from recsync.manifest import load_manifest

    try:
        manifest = load_manifest(manifest_path)
        problems = []
        for org in manifest.orgs:
            try:
                org.resolve_credentials(os.environ)
            except ManifestError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ManifestError(problems, source="environment")
    except ManifestError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if redis_url is None:
        redis_url = (
            broker_url if broker_url.startswith("redis") else "redis://127.0.0.1:6379/0"
        )
    _check_url(broker_url, option="--broker")
    _check_url(redis_url, option="--redis")
    env = dict(os.environ)
    env["RECSYNC_MANIFEST"] = os.path.abspath(manifest_path)
    env["RECSYNC_BROKER_URL"] = broker_url
    env["RECSYNC_REDIS_URL"] = redis_url
    command = [
        sys.executable,
        "-m",
        "dramatiq",
        "recsync.actors.tasks",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--worker-shutdown-timeout",
        str(int(shutdown_timeout_s * 1000)),
    ]
    sys.exit(supervise_workers(command, env=env))


# Signals that ask the workers to stop (forwarded, then the exit code is 0 when they
# drain) and signals that are only forwarded (SIGHUP makes Dramatiq reload in place).
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_FORWARDED_SIGNALS = (*_STOP_SIGNALS, signal.SIGHUP)
EXIT_WORKER_DIED = 1


def supervise_workers(command: list[str], *, env: dict[str, str]) -> int:
    """Run the Dramatiq CLI ``command`` as a child; return this command's exit code.

    Dramatiq 2.2.1's CLI already stops every worker process when one of them exits,
    but it returns that process's own exit code, so a worker that exits with 0 ends
    the group with 0. The supervisor reports any end it did not ask for as a failure.
    """
    # A session of its own keeps a terminal's Ctrl-C from reaching Dramatiq directly
    # as well as through this process: a second signal makes Dramatiq's workers exit
    # at once instead of draining.
    child = subprocess.Popen(
        command, env=env, start_new_session=True, preexec_fn=_die_with_parent
    )
    stop_requested = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        if signum in _STOP_SIGNALS:
            stop_requested = True
        log.info("forwarding signal %s to Dramatiq (pid %d)", signum, child.pid)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED_SIGNALS}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop_requested:
        log.info("workers stopped on request (Dramatiq exit code %d)", code)
        return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
    log.error(
        "workers exited without a stop request (Dramatiq exit code %d); exiting %d",
        code,
        code if code > 0 else EXIT_WORKER_DIED,
    )
    return code if code > 0 else EXIT_WORKER_DIED


@main.command()
@click.option(
    "--scenario",
    default=None,
    help="Scenario: a shipped name (default, storm, flaky-socket) or a YAML file.",
)
@click.option(
    "--time-scale",
    default=0.2,
    show_default=True,
    type=float,
    callback=_time_scale,
    help="Wall seconds per platform second, for the emulator and every policy.",
)
@click.option(
    "--redis",
    "redis_url",
    default=None,
    help="Use this Redis (redis://HOST:PORT/DB) instead of the embedded one.",
)
@click.option(
    "--realtime/--no-realtime",
    default=True,
    show_default=True,
    help="Subscribe to the notification stream.",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="In-process worker threads.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary as one JSON object."
)
def demo(
    scenario: str | None,
    time_scale: float,
    redis_url: str | None,
    realtime: bool,
    threads: int,
    as_json: bool,
) -> None:
    """Run the whole sync against the emulator and print a summary."""
    from recsync.demo import Demo

    try:
        run = Demo(
            scenario=scenario,
            time_scale=time_scale,
            redis_url=redis_url,
            realtime=realtime,
            threads=threads,
        )
    except (ValueError, OSError) as exc:
        click.echo(f"recsync demo: {exc}", err=True)
        sys.exit(2)
    try:
        summary = _run_demo(run, as_json=as_json)
    except (RuntimeError, OSError, ValueError, redis_errors()) as exc:
        click.echo(f"recsync demo: {exc}", err=True)
        sys.exit(1)
    sys.exit(0 if summary.ok else 1)


def redis_errors() -> type[Exception]:
    import redis

    return redis.RedisError


def _run_demo(run: Any, *, as_json: bool) -> Any:
    if as_json:
        summary = run.run()
        click.echo(json.dumps(attrs.asdict(summary), sort_keys=True))
    else:
        summary = _run_with_progress(run)
        _print_summary(summary)
    return summary


def _run_with_progress(run: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("records settled", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        run.progress = update
        return run.run()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_summary(summary: Any) -> None:
    # A pipe or CI log has no terminal width; keep every column readable there.
    console = Console() if sys.stdout.isatty() else Console(width=140)
    table = Table(
        title=f"recsync demo (realtime {'on' if summary.realtime else 'off'}, "
        f"time scale {summary.time_scale})"
    )
    for column in (
        "org",
        "role",
        "records",
        "ready",
        "failed",
        "platform calls",
        "408s",
        "429s (ours)",
        "breaker opened",
        "sweeps",
        "lag p50 (s)",
        "lag p95 (s)",
    ):
        table.add_column(
            column, justify="right" if column not in ("org", "role") else "left"
        )
    for org in summary.orgs:
        table.add_row(
            org.org_id,
            org.role,
            str(org.records),
            str(org.ready),
            str(org.failed),
            str(org.platform_calls),
            str(org.timeouts_408),
            f"{org.rate_limited_429} ({org.rate_limited_429 - org.injected_429})",
            str(org.breaker_opened),
            str(org.batch_sweeps),
            _fmt(org.lag_p50_s),
            _fmt(org.lag_p95_s),
        )
    table.add_row(
        "all",
        "",
        str(summary.records),
        str(summary.ready),
        str(summary.failed),
        str(summary.platform_calls),
        str(summary.timeouts_408),
        f"{summary.rate_limited_429} ({summary.rate_limited_429_by_recsync})",
        str(summary.breaker_opened),
        str(summary.batch_sweeps),
        _fmt(summary.propagation_to_ready_p50_s),
        _fmt(summary.propagation_to_ready_p95_s),
        style="bold",
    )
    console.print(table)
    console.print(
        f"platform calls per record: {summary.calls_per_record:.2f}; "
        "429s (ours) = every 429, and in brackets those not injected by the "
        "scenario; lag = time from propagation to ready, in platform seconds; "
        f"wall time {summary.elapsed_s:.1f} s"
    )


@main.command()
@click.option(
    "--scenario",
    default="default",
    show_default=True,
    help="Scenario: a shipped name or a YAML file.",
)
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=float,
    callback=_time_scale,
    help="Wall seconds per platform second.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind (0 picks a free one).",
)
def emulator(scenario: str, time_scale: float, host: str, port: int) -> None:
    """Run the Genesys Cloud emulator alone until Ctrl-C."""
    from recsync.emulator import run_emulator

    run_emulator(scenario, time_scale=time_scale, host=host, port=port)


@main.command("status-server")
@click.option(
    "--manifest",
    "manifest_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Manifest whose orgs the service serves.",
)
@click.option(
    "--redis",
    "redis_url",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="Redis URL holding record state.",
)
@click.option(
    "--host", default=None, help="Address to bind [default: manifest status.host]."
)
@click.option(
    "--port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Port to bind [default: manifest status.port].",
)
@click.option(
    "--allow-public",
    is_flag=True,
    help="Allow binding a non-loopback address.",
)
def status_server(
    manifest_path: str,
    redis_url: str,
    host: str | None,
    port: int | None,
    allow_public: bool,
) -> None:
    """Serve the status API and the live page from Redis until Ctrl-C."""
    from recsync.status.server import serve_status

    _check_url(redis_url, option="--redis")
    try:
        serve_status(
            manifest_path,
            redis_url=redis_url,
            host=host,
            port=port,
            allow_public=allow_public,
        )
    except ManifestError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except ValueError as exc:
        click.echo(f"recsync status-server: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
