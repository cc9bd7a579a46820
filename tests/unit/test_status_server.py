"""Status server helpers that need no network: host checks and token loading."""

from __future__ import annotations

from importlib import resources

import pytest
from starlette.applications import Starlette

from recsync.errors import ManifestError
from recsync.manifest import Manifest, load_manifest
from recsync.status.server import StatusServer, serve_status, status_tokens

EXAMPLE = str(resources.files("recsync.manifest").joinpath("example.yaml"))


@pytest.fixture
def manifest() -> Manifest:
    return load_manifest(EXAMPLE)


def test_tokens_read_named_variable(manifest: Manifest) -> None:
    tokens = status_tokens(manifest, {"RECSYNC_PRIMARY_STATUS_TOKEN": "s3cret"})
    assert tokens == {"org-primary": "s3cret"}


def test_tokens_unset_variable_raises(manifest: Manifest) -> None:
    with pytest.raises(ManifestError, match="RECSYNC_PRIMARY_STATUS_TOKEN"):
        status_tokens(manifest, {})


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "example.com", "::"])
def test_server_rejects_public_host(host: str) -> None:
    with pytest.raises(ValueError, match="allow_public=True"):
        StatusServer(Starlette(), host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_server_accepts_loopback(host: str) -> None:
    assert StatusServer(Starlette(), host=host).host == host


def test_server_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = StatusServer(Starlette()).url


def test_serve_status_rejects_public_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECSYNC_PRIMARY_STATUS_TOKEN", "s3cret")
    with pytest.raises(ValueError, match="not a loopback address"):
        serve_status(EXAMPLE, redis_url="redis://127.0.0.1:1/0", host="0.0.0.0")


def test_serve_status_needs_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYNC_PRIMARY_STATUS_TOKEN", raising=False)
    with pytest.raises(ManifestError):
        serve_status(EXAMPLE, redis_url="redis://127.0.0.1:1/0", port=1)
