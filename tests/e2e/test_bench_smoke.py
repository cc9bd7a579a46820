"""``python -m bench --smoke``: every strategy runs and produces figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.strategies import NAMES

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (CI=true: it must be)")
        pytest.skip("redis-server is not installed")
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    saved: dict[str, object] = json.loads((out / "results.json").read_text())
    saved["out"] = out
    return saved


@pytest.mark.parametrize("strategy", NAMES)
def test_smoke_strategy_ready(smoke_results: dict[str, object], strategy: str) -> None:
    runs = smoke_results["results"][strategy]  # type: ignore[index]
    assert len(runs) == 1
    figures = runs[0]
    assert figures is not None, f"{strategy} produced no figures"
    assert figures["ready"] > 0


def test_smoke_report_written(smoke_results: dict[str, object]) -> None:
    out = smoke_results["out"]
    assert isinstance(out, Path)
    assert (out / "BENCHMARKS.md").exists()
    assert (out / "docs" / "bench" / "propagation-to-ready.png").exists()
    assert (out / "docs" / "bench" / "platform-calls.png").exists()
