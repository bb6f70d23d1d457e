"""`python -m bertkit.prepare`: the tokenizer and data caches built ahead, then found by the training run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bertkit.config import ConfigError, load

from .conftest import GLUE_FIXTURES, ROOT, TINY_CORPUS, TINY_OVERRIDES, compose_config

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


def test_machines_prepare_their_own_shards_and_the_run_reads_them_all(tmp_path):
    words = TINY_CORPUS.read_text().split()
    documents = ["\n".join(" ".join(words[(d * 7 + s) % len(words) :][:9]) + "." for s in range(8)) for d in range(12)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(documents) + "\n")
    settings = [*SETTINGS, f"data.paths=[{corpus}]", "data.num_shards=2", f"cache_dir={tmp_path / 'cache'}"]
    for shard in (0, 1):  # machine `shard`, on a cache the machines share
        prepared = run(["-m", "bertkit.prepare", *settings, f"data.shard={shard}"], tmp_path)
        assert prepared.returncode == 0, prepared.stderr[-3000:]
        said = prepared.stdout + prepared.stderr
        assert f"Building train.{shard}of2 instances" in said and f"train.{1 - shard}of2" not in said

    train = [str(ROOT / "bertkit" / "train.py"), *settings, f"output_dir={tmp_path / 'run'}"]
    trained = run(train, tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert not any(step in trained.stdout + trained.stderr for step in BUILDING)
    stats = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    assert stats["train"]["documents"] + stats["heldout"]["documents"] == 12

    refused = run([*train[:-1], "data.shard=0", f"output_dir={tmp_path / 'other'}"], tmp_path)
    assert refused.returncode == 2 and "data.shard" in refused.stderr.strip().splitlines()[-1]


def test_a_shard_outside_the_shards_is_refused_at_start():
    cfg = compose_config([*SETTINGS, "data.num_shards=2", "data.shard=2"])
    with pytest.raises(ConfigError, match=r"data\.shard: must be one of 0 \.\. 1 \(data\.num_shards=2\)"):
        load(cfg)
