"""Run the status service: in a background thread, or blocking from a manifest."""

from __future__ import annotations

import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import redis
import uvicorn
from starlette.applications import Starlette

from recsync.errors import ManifestError
from recsync.manifest import load_manifest
from recsync.manifest.models import Manifest, is_loopback_host
from recsync.status.app import create_status_app
from recsync.status.reads import StatusReader
from recsync.store import RecordStore

log = logging.getLogger(__name__)


class StatusServer:
    """Uvicorn server of an app in a daemon thread, bound to loopback by default."""

    def __init__(
        self,
        app: Starlette,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_public: bool = False,
        start_timeout_s: float = 10.0,
    ) -> None:
        if not allow_public and not is_loopback_host(host):
            raise ValueError(
                f"host {host!r} is not a loopback address; bind 127.0.0.1, or pass "
                "--allow-public (allow_public=True) to serve the status service to "
                "the network"
            )
        self.app = app
        self.host = host
        self.port = port
        self.start_timeout_s = start_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """Base URL, such as ``http://127.0.0.1:8765``, known after :meth:`start`."""
        if self._socket is None:
            raise RuntimeError("the status server is not started; call start() first")
        host, port = self._socket.getsockname()[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> StatusServer:
        """Bind the socket, start uvicorn and wait until it accepts connections.

        Raises:
            RuntimeError: the server is already running or did not start within
                ``start_timeout_s``.
        """
        if self._thread is not None:
            raise RuntimeError("the status server is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name="recsync-status",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the status server did not start on {self.host}:{self.port} "
                    f"within {self.start_timeout_s} s; see the uvicorn log"
                )
            time.sleep(0.02)
        log.info("status server listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread. Calling it twice is safe."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.warning("status server thread did not exit within 10 s")
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        log.info("status server stopped")

    def __enter__(self) -> StatusServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# A token shorter than this is too easy to guess for a service on the network.
MIN_TOKEN_CHARS = 16


def status_tokens(manifest: Manifest, environ: Mapping[str, str]) -> dict[str, str]:
    """Return each org's status token, read from the variable it names.

    Orgs without ``status_token_env`` are left out, so no token opens their routes.

    Raises:
        ManifestError: a named variable is unset or empty.
    """
    tokens: dict[str, str] = {}
    problems: list[str] = []
    for org in manifest.orgs:
        try:
            token = org.resolve_status_token(environ)
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        if token is None:
            log.warning("org %s has no status_token_env; its routes are closed", org.id)
            continue
        if len(token) < MIN_TOKEN_CHARS:
            problems.append(
                f"orgs[{org.id}].status_token_env: the token in {org.status_token_env} "
                f"is shorter than {MIN_TOKEN_CHARS} characters; use a long random token"
            )
        for other_id, other_token in tokens.items():
            if hmac.compare_digest(other_token, token):
                problems.append(
                    f"orgs[{org.id}].status_token_env: {org.status_token_env} holds "
                    f"the same token as org {other_id}'s; give each org its own token"
                )
        tokens[org.id] = token
    if problems:
        raise ManifestError(problems, source="environment")
    return tokens


def serve_status(
    manifest_path: str | os.PathLike[str],
    *,
    redis_url: str,
    host: str | None = None,
    port: int | None = None,
    allow_public: bool = False,
    allow_unauthenticated: bool = False,
) -> None:
    """Serve the status service until interrupted.

    Each org's token comes from the environment variable that its
    ``status_token_env`` names. Orgs without one are left out and their routes
    return 403 to every token. ``host`` and ``port`` default to the manifest's
    ``status`` section.

    Raises:
        ManifestError: the manifest is invalid, or a token variable is unset.
        ValueError: ``host`` is not loopback and ``allow_public`` is False.
    """
    manifest = load_manifest(Path(manifest_path))
    tokens = status_tokens(manifest, os.environ)
    bind_host = host if host is not None else manifest.status.host
    bind_port = port if port is not None else manifest.status.port
    if not allow_public and not is_loopback_host(bind_host):
        raise ValueError(
            f"host {bind_host!r} is not a loopback address; bind 127.0.0.1, or pass "
            "--allow-public (allow_public=True) to serve the status service to "
            "the network"
        )
    client = redis.Redis.from_url(redis_url)
    reader = StatusReader(RecordStore(client), client)
    app = create_status_app(
        reader=reader, tokens=tokens, allow_unauthenticated=allow_unauthenticated
    )
    log.info("serving status for %d orgs on %s:%d", len(tokens), bind_host, bind_port)
    print(
        f"recsync status: http://{bind_host}:{bind_port}/#token=TOKEN "
        "(TOKEN: an org's status token)",
        flush=True,
    )
    uvicorn.run(app, host=bind_host, port=bind_port, log_level="info")
