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
    environ = {"RECSYNC_PRIMARY_STATUS_TOKEN": "s3cret-token-for-tests"}
    tokens = status_tokens(manifest, environ)
    assert tokens == {"org-primary": "s3cret-token-for-tests"}


def test_tokens_unset_variable_raises(manifest: Manifest) -> None:
    with pytest.raises(ManifestError, match="RECSYNC_PRIMARY_STATUS_TOKEN"):
        status_tokens(manifest, {})


def test_tokens_short_token_rejected(manifest: Manifest) -> None:
    with pytest.raises(ManifestError, match="shorter than 16"):
        status_tokens(manifest, {"RECSYNC_PRIMARY_STATUS_TOKEN": "abc"})


def test_tokens_shared_between_orgs_rejected(tmp_path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "version: 1\n"
        "orgs:\n"
        "  - id: org-a\n"
        "    region: us-east-1\n"
        "    role: primary\n"
        "    credentials: {client_id_env: A_ID, client_secret_env: A_SECRET}\n"
        "    status_token_env: A_STATUS\n"
        "  - id: org-b\n"
        "    region: eu-west-1\n"
        "    role: satellite\n"
        "    credentials: {client_id_env: B_ID, client_secret_env: B_SECRET}\n"
        "    status_token_env: B_STATUS\n"
    )
    same = "the-same-token-for-both-orgs"
    with pytest.raises(ManifestError) as caught:
        status_tokens(load_manifest(path), {"A_STATUS": same, "B_STATUS": same})
    assert "same token as org org-a" in str(caught.value)
    assert same not in str(caught.value)


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
    monkeypatch.setenv("RECSYNC_PRIMARY_STATUS_TOKEN", "s3cret-token-for-tests")
    with pytest.raises(ValueError, match="not a loopback address"):
        serve_status(EXAMPLE, redis_url="redis://127.0.0.1:1/0", host="0.0.0.0")


def test_serve_status_needs_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYNC_PRIMARY_STATUS_TOKEN", raising=False)
    with pytest.raises(ManifestError):
        serve_status(EXAMPLE, redis_url="redis://127.0.0.1:1/0", port=1)
