"""The recsync command: input checks that exit 2 before anything starts."""

from __future__ import annotations

from importlib import resources

import pytest
from click.testing import CliRunner

from recsync.actors.broker import redact_url
from recsync.cli import main

EXAMPLE = str(resources.files("recsync.manifest").joinpath("example.yaml"))


def test_check_example_exits_0():
    result = CliRunner().invoke(main, ["check", EXAMPLE])
    assert result.exit_code == 0


def test_check_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2


def test_worker_without_credentials_exits_2(monkeypatch):
    for name in ("RECSYNC_PRIMARY_CLIENT_ID", "RECSYNC_PRIMARY_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["worker", "--manifest", EXAMPLE])
    assert result.exit_code == 2
    assert "RECSYNC_PRIMARY_CLIENT_SECRET" in result.output


def test_worker_bad_broker_hides_password(monkeypatch):
    monkeypatch.setattr(
        "recsync.manifest.models.Credentials.resolve",
        lambda self, environ, label="": ("id", "secret"),
    )
    result = CliRunner().invoke(
        main,
        ["worker", "--manifest", EXAMPLE, "--broker", "redsi://:S3cretPw99@host:1/0"],
    )
    assert result.exit_code == 2
    assert "S3cretPw99" not in result.output
    assert "not supported" in result.output


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e-9", "abc", "100"])
def test_demo_rejects_bad_time_scale(value):
    result = CliRunner().invoke(main, ["demo", "--time-scale", value])
    assert result.exit_code == 2


def test_redact_url_hides_password():
    assert (
        redact_url("amqp://guest:pw@127.0.0.1:5672/")
        == "amqp://guest:***@127.0.0.1:5672/"
    )
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
