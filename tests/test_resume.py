"""Never lose a run: killed at any moment, restarted with the same command, it ends bit-identical to a run
that was never interrupted (dropout and dynamic masking on, gradient accumulation 2, several epochs)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from .conftest import ROOT, TINY_OVERRIDES

pytestmark = pytest.mark.slow

# ~40 instances at batch 4 with accumulation 2: 5 optimizer steps an epoch, 12 steps in all.
SETTINGS = [
    *TINY_OVERRIDES,
    "data.dupe_factor=4",
    "trainer.gradient_accumulation_steps=2",
    "trainer.max_steps=12",
    "trainer.save_every=2",
    "trainer.keep_last=2",
    "trainer.log_every=1",
    "trainer.eval_every=3",  # the best evaluation so far must survive the kill too: model/ holds its weights
]
CRASH_IN_SAVE = """
import os, signal, sys
from bertkit import train
from bertkit.training import checkpoints as checkpoint
publish = checkpoint._sync_tree
def crash_while_saving(folder):
    if folder.name == "step_6.tmp":  # the state is on disk, the rename that would publish it is not done
        os.kill(os.getpid(), signal.SIGKILL)
    publish(folder)
checkpoint._sync_tree = crash_while_saving
sys.argv = ["train.py", *sys.argv[1:]]
train.main()
"""


def command(run_dir, cache_dir) -> list[str]:
    return [sys.executable, "bertkit/train.py", *SETTINGS, f"output_dir={run_dir}", f"cache_dir={cache_dir}"]


def env(cache_dir) -> dict[str, str]:
    return dict(os.environ, BERTKIT_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")


def finish(run_dir, cache_dir) -> subprocess.CompletedProcess:
    result = subprocess.run(command(run_dir, cache_dir), cwd=ROOT, env=env(cache_dir), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def logged_step(run_dir) -> int:
    log = run_dir / "log.jsonl"
    lines = log.read_text().splitlines() if log.is_file() else []
    return max((json.loads(line)["step"] for line in lines if '"loss"' in line), default=0)


def start_and_wait_for_step(run_dir, cache_dir, step: int, args=None) -> subprocess.Popen:
    process = subprocess.Popen(
        args or command(run_dir, cache_dir), cwd=ROOT, env=env(cache_dir), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while logged_step(run_dir) < step and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process


def weights(run_dir) -> dict:
    return load_file(run_dir / "model" / "model.safetensors")


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), f"{name} differs"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    cache_dir = root / "cache"
    finish(root / "run", cache_dir)
    return weights(root / "run"), cache_dir


def test_sigkill_at_a_random_step_then_restart_is_bit_identical(uninterrupted, tmp_path):
    reference, cache_dir = uninterrupted
    kill_at = random.Random().randint(3, 10)
    process = start_and_wait_for_step(tmp_path / "run", cache_dir, kill_at)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    stopped_at = logged_step(tmp_path / "run")
    assert 0 < stopped_at < 12, f"the run was to be killed mid-way (at step {kill_at})"
    resumed = finish(tmp_path / "run", cache_dir)
    assert "Resumed from" in resumed.stderr + resumed.stdout
    assert_identical(weights(tmp_path / "run"), reference)


def test_sigkill_during_a_checkpoint_write_then_restart_is_bit_identical(uninterrupted, tmp_path):
    reference, cache_dir = uninterrupted
    run_dir = tmp_path / "run"
    crashing = [sys.executable, "-c", CRASH_IN_SAVE, *command(run_dir, cache_dir)[2:]]
    process = subprocess.run(crashing, cwd=ROOT, env=env(cache_dir), capture_output=True, text=True)
    assert process.returncode == -signal.SIGKILL
    checkpoints = run_dir / "checkpoints"
    # The newest keep_last=2 complete ones, the partial one, and the best evaluation's (step 3) if it is older.
    kept = {p.name for p in checkpoints.iterdir()}
    assert {"step_4", "step_6.tmp"} <= kept <= {"step_2", "step_3", "step_4", "step_6.tmp"} and len(kept) == 3
    resumed = finish(run_dir, cache_dir)
    output = resumed.stderr + resumed.stdout
    assert f"Ignoring {checkpoints / 'step_6.tmp'}" in output and "step_4 (step 4" in output
    assert_identical(weights(run_dir), reference)
    best = json.loads((run_dir / "metrics.json").read_text())["best"]["step"]
    assert {p.name for p in checkpoints.iterdir()} == {"step_10", "step_12", f"step_{best}"}


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(uninterrupted, tmp_path):
    reference, cache_dir = uninterrupted
    run_dir = tmp_path / "run"
    process = start_and_wait_for_step(run_dir, cache_dir, 3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("bertkit: stopped by SIGTERM at step ") and last.endswith("run the same command to resume")
    assert "Traceback" not in stderr
    step = int(last.split("at step ")[1].split(";")[0])
    assert (run_dir / "checkpoints" / f"step_{step}" / "loop_state.json").is_file()
    finish(run_dir, cache_dir)
    assert_identical(weights(run_dir), reference)
