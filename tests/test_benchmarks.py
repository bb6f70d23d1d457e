"""The GPU benchmark script runs (in its CPU smoke form), so it has not rotted when a GPU is finally lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_throughput_smoke_runs_both_arms_of_both_tasks():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--smoke"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(r["task"], r["arm"]) for r in rows] == [
        ("pretraining", "plain Hugging Face loop"),
        ("pretraining", "bertkit"),
        ("squad", "plain Hugging Face loop"),
        ("squad", "bertkit"),
    ]
    for row in rows:
        assert row["steps"] == 2 and row["tokens_per_second"] > 0 and 0 < row["loss"] < 20
