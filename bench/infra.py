"""Processes a benchmark run starts: redis-server, the emulator and workers.

Every server binds 127.0.0.1 on a free port, and every child runs in its own
process group so a run can stop a worker together with the processes it forks.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

log = logging.getLogger(__name__)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    command: list[str], *, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new process group with stdout and stderr in a file."""
    handle = log_path.open("ab")
    return subprocess.Popen(
        command,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], *, grace_s: float = 2.0) -> None:
    """Send SIGTERM to the process group, then SIGKILL after ``grace_s``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        log.warning(
            "pid %d ignored SIGTERM for %.0f s; killing it", process.pid, grace_s
        )
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_s)
    except ProcessLookupError:
        pass


def start_redis(log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a throwaway redis-server without persistence; return it and its URL."""
    port = free_port()
    process = spawn(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(log_dir),
        ],
        log_path=log_dir / "redis.log",
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return process, url
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                stop(process)
                raise RuntimeError(
                    f"redis-server on port {port} did not start; see "
                    f"{log_dir / 'redis.log'} (is redis-server installed?)"
                ) from None
            time.sleep(0.05)


def start_emulator(
    scenario_path: Path, *, time_scale: float, port: int, log_dir: Path
) -> subprocess.Popen[bytes]:
    """Start the emulator in a subprocess and wait until its admin routes respond."""
    process = spawn(
        [
            sys.executable,
            "-m",
            "recsync.emulator",
            "--scenario",
            str(scenario_path),
            "--time-scale",
            repr(time_scale),
            "--port",
            str(port),
        ],
        log_path=log_dir / "emulator.log",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_emulator/clock", timeout=1.0)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                stop(process)
                raise RuntimeError(
                    f"emulator on port {port} did not start; see "
                    f"{log_dir / 'emulator.log'}"
                ) from None
            time.sleep(0.05)


def wait_for_marker(path: Path, marker: str, *, timeout_s: float) -> bool:
    """Wait until ``marker`` appears in a log file; return whether it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and marker in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False
