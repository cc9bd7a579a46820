"""Run the emulator with uvicorn: in a background thread or in the foreground."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from recsync.emulator.app import EmulatorApp, create_app
from recsync.emulator.clock import ScaledClock
from recsync.emulator.loading import load_scenario, parse_fault_mapping
from recsync.emulator.scenario import ONE_SHOT_FAULTS, FaultSpec, Scenario
from recsync.emulator.world import World

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 10.0
# uvicorn's implementation built on the websockets library's Sans-I/O layer, which
# also lets the app reject a handshake with an HTTP status (404 for unknown channels).
WS_IMPLEMENTATION = "websockets-sansio"

ScenarioSource = Scenario | str | Path | Mapping[str, Any]


def _check_host(host: str, *, allow_non_loopback: bool) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not allow_non_loopback:
        raise ValueError(
            f"host {host!r} is not a loopback address; the emulator has no real "
            "authentication, so bind it to 127.0.0.1, or pass allow_non_loopback=True "
            "(--allow-non-loopback on the command line)"
        )


def _scenario(source: ScenarioSource) -> Scenario:
    return source if isinstance(source, Scenario) else load_scenario(source)


class EmulatorServer:
    """The emulator served by uvicorn in a background thread with its own loop.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        scenario: ScenarioSource,
        *,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_non_loopback: bool = False,
    ) -> None:
        _check_host(host, allow_non_loopback=allow_non_loopback)
        self.scenario = _scenario(scenario)
        self.host = host
        self.port = port
        self._clock = ScaledClock(time_scale=time_scale)
        self.world = World(self.scenario, clock=self._clock)
        self.app: EmulatorApp = create_app(self.world)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT`` of the running server."""
        return f"ws://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Bind, start serving and wait until the server accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the emulator server is already running; stop it first")
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.world.base_url = self.base_url
        config = _config(self.app, log_level="warning")
        self._server = uvicorn.Server(config)
        self._clock.reset()
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"recsync-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the emulator did not start on {self.base_url} within "
                    f"{STARTUP_TIMEOUT_S} s; see the uvicorn log above"
                )
            time.sleep(0.01)
        logger.info(
            "emulator serving %s (time_scale=%s)", self.base_url, self._clock.time_scale
        )
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(SHUTDOWN_TIMEOUT_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(SHUTDOWN_TIMEOUT_S)
        if self._thread.is_alive():
            logger.warning("emulator thread on %s did not stop in time", self.base_url)
        self._server = None
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, function: Any, *args: Any) -> Any:
        loop = self.app.loop
        if loop is None or self._thread is None:
            return function(*args)

        async def run() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(SHUTDOWN_TIMEOUT_S)

    def add_fault(self, fault: FaultSpec | Mapping[str, Any]) -> FaultSpec:
        """Add a fault while the server runs (a FaultSpec or its mapping)."""
        if not isinstance(fault, FaultSpec):
            raw = dict(fault)
            if raw.get("kind") in ONE_SHOT_FAULTS and "at_s" not in raw:
                raw["at_s"] = self.world.now()
            fault = parse_fault_mapping(raw, org_ids=set(self.world.orgs))

        def apply() -> None:
            self.world.add_fault(fault)
            if self.app.scheduler is not None:
                self.app.scheduler.wake()

        self._call(apply)
        return fault

    def drop_sockets(self) -> int:
        """Close every notification socket at once; return how many were open."""
        count: int = self._call(self.app.hub.drop_all_sockets)
        return count

    def stats(self) -> dict[str, Any]:
        """Return the per-org counters with live channel and socket counts."""
        snapshot: dict[str, Any] = self._call(self.world.stats_report)
        return snapshot


def run_emulator(
    scenario: ScenarioSource,
    *,
    time_scale: float = 1.0,
    host: str = "127.0.0.1",
    port: int = 8080,
    allow_non_loopback: bool = False,
) -> None:
    """Serve the emulator in the foreground until Ctrl-C."""
    _check_host(host, allow_non_loopback=allow_non_loopback)
    loaded = _scenario(scenario)
    world = World(loaded, clock=ScaledClock(time_scale=time_scale))
    sock = _bind(host, port)
    world.base_url = f"http://{host}:{sock.getsockname()[1]}"
    print(f"recsync emulator: scenario {loaded.name!r} on {world.base_url}")
    for org in loaded.orgs:
        print(f"  org {org.id} ({org.role}, {org.region}): client_id={org.client_id}")
    server = uvicorn.Server(_config(create_app(world), log_level="info"))
    # uvicorn handles Ctrl-C (SIGINT) itself when it runs in the main thread.
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    # Binding before uvicorn starts makes port 0 usable: the kernel picks a free
    # port and the caller learns it before any URL is built.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _config(app: EmulatorApp, *, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        ws=WS_IMPLEMENTATION,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
