"""The ``python -m recsync.emulator`` command line, on inputs that stop it early."""

from __future__ import annotations

import pytest

from recsync.emulator.__main__ import main


def test_cli_unknown_scenario_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "no-such-scenario"]) == 2
    assert "default, flaky-socket, storm" in capsys.readouterr().err


def test_cli_non_loopback_host_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0"]) == 2
    assert "--allow-non-loopback" in capsys.readouterr().err


def test_cli_invalid_time_scale_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--time-scale", "0"]) == 2
    assert "time_scale" in capsys.readouterr().err
