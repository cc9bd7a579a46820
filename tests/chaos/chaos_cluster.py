"""A whole recsync deployment on loopback for the chaos tests.

It runs an append-only redis-server, the emulator in this process, ``recsync worker``
as a subprocess, and plays the integration host here: the plugin tracks recordings and
sends fetches through a Redis broker that the worker consumes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import dramatiq
import httpx
import psutil
import redis
import yaml

from recsync.actors.broker import install_broker
from recsync.store import RecordStore, State, keys

log = logging.getLogger(__name__)

WORKER_BOOT_TIMEOUT_S = 30.0
WORKER_EXIT_TIMEOUT_S = 30.0


def credential_env(org_id: str, part: str) -> str:
    """Return the environment variable name of one org credential."""
    return f"RECSYNC_CHAOS_{org_id.upper().replace('-', '_')}_{part}"


def manifest_mapping(
    scenario: Any, *, base_url: str, time_scale: float, realtime: bool = True
) -> dict[str, Any]:
    """Return a manifest mapping with the scenario's orgs served by the emulator."""
    orgs = [
        {
            "id": org.id,
            "name": org.name,
            "region": org.region,
            "role": str(org.role),
            "base_url": base_url,
            "credentials": {
                "client_id_env": credential_env(org.id, "CLIENT_ID"),
                "client_secret_env": credential_env(org.id, "CLIENT_SECRET"),
            },
        }
        for org in scenario.orgs
    ]
    return {
        "version": 1,
        "time_scale": time_scale,
        "orgs": orgs,
        "flags": {"async_metadata_sync": True, "realtime": realtime},
    }


def credential_environ(scenario: Any) -> dict[str, str]:
    """Return the credential variables that :func:`manifest_mapping` names."""
    environ = {}
    for org in scenario.orgs:
        environ[credential_env(org.id, "CLIENT_ID")] = org.client_id
        environ[credential_env(org.id, "CLIENT_SECRET")] = org.client_secret
    return environ


def write_manifest(path: Path, mapping: dict[str, Any]) -> Path:
    """Write ``mapping`` as YAML to ``path`` and return the path."""
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


def bind_actors(broker: dramatiq.Broker) -> Callable[[], None]:
    """Declare recsync's actors on ``broker`` in this process; return an undo.

    :mod:`recsync.actors.tasks` binds its actors to the broker installed when it is
    first imported, once per process, so a test that needs another broker rebinds
    them here and calls the returned function when it is done.
    """
    from recsync.actors import tasks

    actors = [a for a in vars(tasks).values() if isinstance(a, dramatiq.Actor)]
    previous = [(actor, actor.broker) for actor in actors]
    for actor in actors:
        actor.broker = broker
        broker.declare_actor(actor)

    def undo() -> None:
        for actor, old_broker in previous:
            actor.broker = old_broker
        install_broker(previous[0][1])

    return undo


class WorkerProcess:
    """``recsync worker`` as a subprocess, with its log in a file."""

    def __init__(
        self,
        *,
        manifest: Path,
        broker_url: str,
        environ: dict[str, str],
        log_path: Path,
        processes: int = 2,
        threads: int = 4,
        shutdown_timeout_s: float = 2.0,
    ) -> None:
        self.manifest = manifest
        self.broker_url = broker_url
        self.environ = environ
        self.log_path = log_path
        self.processes = processes
        self.threads = threads
        self.shutdown_timeout_s = shutdown_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """Start the supervisor and wait until every worker process has booted."""
        command = [
            sys.executable,
            "-m",
            "recsync.cli",
            "--log-level",
            "info",
            "worker",
            "--manifest",
            str(self.manifest),
            "--broker",
            self.broker_url,
            "--processes",
            str(self.processes),
            "--threads",
            str(self.threads),
            "--shutdown-timeout",
            str(self.shutdown_timeout_s),
        ]
        env = {**os.environ, **self.environ}
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
        self._wait_booted()
        return self

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + WORKER_BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(
                    f"recsync worker exited during boot; see {self.log_path}"
                )
            if len(self.children()) >= self.processes and self._log_says_ready():
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"recsync worker did not boot within {WORKER_BOOT_TIMEOUT_S} s; "
            f"see {self.log_path}"
        )

    def _log_says_ready(self) -> bool:
        text = self.log_path.read_text(errors="replace")
        starts = text.count("Worker process is ready for action.")
        return starts >= self.processes * self.boots

    @property
    def boots(self) -> int:
        """How many times the supervisor has been started with this log file."""
        text = self.log_path.read_text(errors="replace")
        return max(text.count("is booting up."), 1)

    def dramatiq_parent(self) -> psutil.Process | None:
        """Return the Dramatiq CLI process the supervisor runs, if it is up."""
        if self.process is None:
            return None
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return None
        return children[0] if children else None

    def children(self) -> list[psutil.Process]:
        """Return the live worker processes (Dramatiq's children, not its helpers)."""
        parent = self.dramatiq_parent()
        if parent is None:
            return []
        workers = []
        try:
            for child in parent.children():
                if "resource_tracker" not in " ".join(child.cmdline()):
                    workers.append(child)
        except psutil.NoSuchProcess:
            return []
        return workers

    def kill_one_child(self) -> int:
        """Send SIGKILL to one worker process; return its pid."""
        children = self.children()
        if not children:
            raise RuntimeError("recsync worker has no live worker process to kill")
        victim = children[0]
        victim.send_signal(signal.SIGKILL)
        return int(victim.pid)

    def wait_exit(self, timeout_s: float = WORKER_EXIT_TIMEOUT_S) -> int:
        """Wait for the supervisor to exit; return its exit code."""
        assert self.process is not None
        code = self.process.wait(timeout=timeout_s)
        self.process = None
        return code

    def terminate(self) -> int:
        """Send SIGTERM and wait for the drained exit; return the exit code."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def stop(self) -> None:
        """Stop the supervisor, killing the whole tree if it does not drain."""
        if self.process is None:
            return
        try:
            self.terminate()
        except subprocess.TimeoutExpired:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
            self.process.kill()
            self.process.wait()
            self.process = None


@attrs.frozen
class HistoryProblem:
    """One break of the store's rules found in an org's change stream."""

    org_id: str
    recording_id: str
    problem: str


def read_history(store: RecordStore, org_id: str) -> dict[str, list[dict[str, str]]]:
    """Return every change of an org's stream, grouped by recording, oldest first."""
    history: dict[str, list[dict[str, str]]] = {}
    after = "0-0"
    while True:
        page = store.read_changes(org_id, after_id=after, count=1000)
        if not page:
            return history
        for entry_id, fields in page:
            history.setdefault(fields["recording_id"], []).append(fields)
            after = entry_id


def history_problems(
    store: RecordStore, org_id: str, recording_ids: Iterable[str]
) -> list[HistoryProblem]:
    """Check each record's changes: nothing leaves ``ready``, attempts count up by one
    per claim, and the stored attempt count equals the number of claims."""
    history = read_history(store, org_id)
    problems = []
    for recording_id in recording_ids:
        changes = history.get(recording_id, [])
        seen_ready = False
        claims = 0
        for change in changes:
            if seen_ready and change["state"] != str(State.READY):
                problems.append(
                    HistoryProblem(
                        org_id, recording_id, f"left ready for {change['state']}"
                    )
                )
            if change["state"] == str(State.READY):
                seen_ready = True
            if change["state"] == str(State.FETCHING):
                claims += 1
                if int(change["attempts"]) != claims:
                    problems.append(
                        HistoryProblem(
                            org_id,
                            recording_id,
                            f"claim {claims} recorded attempts={change['attempts']}",
                        )
                    )
        record = store.get(org_id, recording_id)
        if record is None:
            problems.append(HistoryProblem(org_id, recording_id, "record is missing"))
        elif record.attempts != claims:
            problems.append(
                HistoryProblem(
                    org_id,
                    recording_id,
                    f"stored attempts={record.attempts}, claims in stream={claims}",
                )
            )
    return problems


def unsettled(store: RecordStore, batch: dict[str, list[str]]) -> dict[str, list[str]]:
    """Return the records of ``batch`` (org id to recording ids) not yet ``ready``."""
    waiting: dict[str, list[str]] = {}
    for org_id, recording_ids in batch.items():
        records = {r.recording_id: r for r in store.get_many(org_id, recording_ids)}
        for recording_id in recording_ids:
            record = records.get(recording_id)
            if record is None or record.state is not State.READY:
                waiting.setdefault(org_id, []).append(recording_id)
    return waiting


def wait_ready(
    store: RecordStore, batch: dict[str, list[str]], *, within_s: float
) -> float | None:
    """Wait until every record of ``batch`` is ``ready``; return the seconds it took,
    or None when some were still unsettled after ``within_s``."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        try:
            if not unsettled(store, batch):
                return time.monotonic() - started
        except redis.ConnectionError:
            pass  # the test's own Redis may be restarting
        time.sleep(0.05)
    return None


def subscriber_states(client: redis.Redis, org_ids: Iterable[str]) -> dict[str, str]:
    """Return each org's realtime subscriber state as the store reports it."""
    states = {}
    for org_id in org_ids:
        raw = client.hget(keys.subscriber_status(org_id), "state")
        states[org_id] = raw.decode() if isinstance(raw, bytes) else "none"
    return states


def add_fault(base_url: str, fault: dict[str, Any]) -> dict[str, Any]:
    """Add a fault through the emulator's admin route; return the stored fault."""
    response = httpx.post(f"{base_url}/_emulator/faults", json=fault, timeout=5)
    response.raise_for_status()
    stored: dict[str, Any] = response.json()
    return stored


def drop_sockets(base_url: str) -> int:
    """Close every notification socket through the admin route; return how many."""
    response = httpx.post(f"{base_url}/_emulator/sockets/drop", timeout=5)
    response.raise_for_status()
    return int(response.json()["dropped"])


def emulator_now_s(base_url: str) -> float:
    """Return the emulator's platform clock in seconds."""
    response = httpx.get(f"{base_url}/_emulator/clock", timeout=5)
    response.raise_for_status()
    return float(response.json()["now_s"])
