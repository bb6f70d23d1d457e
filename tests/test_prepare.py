"""`python -m bertkit.prepare`: the tokenizer and data caches built ahead, then found by the training run."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import GLUE_FIXTURES, ROOT, TINY_OVERRIDES

SETTINGS = [*TINY_OVERRIDES, "trainer.max_steps=2"]
BUILDING = ("Training a WordPiece vocabulary", "Building train instances", "Tokenizing")


def run(module_args: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, *module_args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_prepared_run_builds_nothing_at_start_up(tmp_path):
    settings = [*SETTINGS, f"cache_dir={tmp_path / 'cache'}"]
    prepared = run(["-m", "bertkit.prepare", *settings], tmp_path)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    said = prepared.stdout + prepared.stderr
    assert all(step in said for step in BUILDING) and "Prepared in" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no run directory, no Hydra folder

    trained = run([str(ROOT / "bertkit" / "train.py"), *settings, f"output_dir={tmp_path / 'run'}"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert not any(step in trained.stdout + trained.stderr for step in BUILDING)
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_prepare_builds_fine_tuning_caches_too(tmp_path, tiny_checkpoint):
    settings = ["+experiment=glue_rte", f"model.name_or_path={tiny_checkpoint}", f"data.glue_dir={GLUE_FIXTURES}",
                f"cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    prepared = run(["-m", "bertkit.prepare", *settings], tmp_path)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert "train 16 examples, validation 8 examples, test 6 examples" in prepared.stdout + prepared.stderr
    short = ["trainer.max_steps=1", "trainer.per_device_batch_size=4", "trainer.progress_bar=false"]
    trained = run([str(ROOT / "bertkit" / "train.py"), *settings, *short, f"output_dir={tmp_path / 'run'}"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Tokenizing" not in trained.stdout + trained.stderr


def test_bad_settings_stop_prepare_in_one_line(tmp_path):
    missing = tmp_path / "no_such_corpus.txt"
    result = run(["-m", "bertkit.prepare", *SETTINGS, f"data.paths=[{missing}]"], tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and str(missing) in result.stderr
    result = run(["-m", "bertkit.prepare", *SETTINGS, "trainer.max_stepz=2"], tmp_path)
    assert result.returncode != 0 and "max_stepz" in result.stderr
