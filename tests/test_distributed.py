"""Several processes on one CPU machine (gloo): one group, one run directory, the same results as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bertkit import train

from .conftest import ASSETS, GLUE_FIXTURES, ROOT, TINY_OVERRIDES, compose_config, logged_losses

pytestmark = pytest.mark.slow

COMMON = ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
          "--num_cpu_threads_per_process", "1", "--main_process_port", "0"]  # fmt: skip
TWO = [sys.executable, "-m", "bertkit.launch", "--cpu", "--num_processes", "2", *COMMON]
ONE = [sys.executable, "-m", "bertkit.launch", "--num_processes", "1", *COMMON]
TRAIN = str(ROOT / "bertkit" / "train.py")
PRETRAIN = [*TINY_OVERRIDES, "data.dupe_factor=4", "trainer.log_every=1"]


def launch(launcher: list[str], args: list[str], cache_dir, cwd=ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, BERTKIT_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("ACCELERATE_USE_CPU", None)
    result = subprocess.run([*launcher, TRAIN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return result


def succeeds(launcher, args, cache_dir, cwd=ROOT) -> subprocess.CompletedProcess:
    result = launch(launcher, args, cache_dir, cwd)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_two_process_pretraining_is_one_group_with_one_run_directory(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    succeeds(TWO, [*PRETRAIN, "trainer.max_steps=4", "trainer.save_every=4", f"output_dir={run_dir}"], cache_dir)
    throughput = metrics(run_dir)["throughput"]
    assert throughput["processes"] == 2 and throughput["weights_identical_across_processes"] is True
    # One process writes the results; both write their part of the checkpoint.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints", "config.yaml", "curves.png", "inputs.json", "log.jsonl", "metrics.json", "model", "train.log",
    ]  # fmt: skip
    assert (run_dir / "checkpoints" / "step_4" / "random_states_1.pkl").is_file()


def test_two_process_glue_finetuning(tmp_path, cache_dir, tiny_checkpoint):
    run_dir = tmp_path / "run"
    args = ["+experiment=glue_rte", f"model.name_or_path={tiny_checkpoint}", f"data.glue_dir={GLUE_FIXTURES}",
            "trainer.max_steps=3", "trainer.per_device_batch_size=4", "trainer.eval_batch_size=4",
            "trainer.progress_bar=false", f"output_dir={run_dir}"]  # fmt: skip
    succeeds(TWO, args, cache_dir)
    result = metrics(run_dir)
    assert result["throughput"]["processes"] == 2 and result["throughput"]["weights_identical_across_processes"]
    assert result["validation"]["examples"] == 8  # each example once, though 2 processes evaluated
    assert len((run_dir / "predictions" / "RTE.tsv").read_text().splitlines()) == 1 + 6


SQUAD = ASSETS / "squad" / "tiny-v2.0.json"
CONLL = ASSETS / "conll"
FINE_TUNING = {
    "glue": (["+experiment=glue_mrpc", f"data.glue_dir={GLUE_FIXTURES}"], ["MRPC.tsv", "validation.tsv"]),
    "squad": (
        ["+experiment=squad_v2", f"data.train_file={SQUAD}", f"data.validation_file={SQUAD}",
         "data.max_seq_length=48", "data.doc_stride=16", "data.max_query_length=16"],
        ["predictions.json", "nbest_predictions.json", "null_odds.json"],
    ),
    "ner": (
        ["+experiment=conll2003", f"data.train_file={CONLL / 'train.txt'}",
         f"data.validation_file={CONLL / 'dev.txt'}", f"data.test_file={CONLL / 'test.txt'}"],
        ["validation.txt", "test.txt"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("recipe", ["pretraining", *FINE_TUNING])
def test_two_process_evaluation_equals_one_process_exactly(recipe, tmp_path, cache_dir, tiny_checkpoint):
    if recipe in FINE_TUNING:
        task = [*FINE_TUNING[recipe][0], "trainer.per_device_batch_size=4", "trainer.progress_bar=false"]
        start = [f"model.name_or_path={tiny_checkpoint}"]
    else:
        task, start = PRETRAIN, []
    # The model to evaluate is trained in this process: only the evaluations are compared, launched both ways.
    train.run(compose_config([*task, *start, "trainer.max_steps=3", f"output_dir={tmp_path / 'trained'}",
                              f"cache_dir={cache_dir}"]))  # fmt: skip
    trained = ["model=pretrained", f"model.name_or_path={tmp_path / 'trained' / 'model'}"]
    evaluate = [*task, *trained, "trainer.max_steps=0", "trainer.eval_batch_size=2"]
    succeeds(ONE, [*evaluate, f"output_dir={tmp_path / 'one'}"], cache_dir)
    succeeds(TWO, [*evaluate, f"output_dir={tmp_path / 'two'}"], cache_dir)
    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    splits = [key for key in one if key in ("heldout", "validation", "test")]
    assert splits and all(one[split] == two[split] for split in splits)
    assert two["throughput"]["processes"] == 2
    for name in FINE_TUNING.get(recipe, ((), []))[1]:
        written = [(tmp_path / run / "predictions" / name).read_text() for run in ("one", "two")]
        assert written[0] == written[1], name


def test_two_processes_follow_the_one_process_loss_curve(tmp_path, cache_dir):
    """Same global batch (1 x 8 and 2 x 4): the same examples, the same masks (keyed by example), no dropout.
    The curves differ only in how the loss is averaged (per process, then across) and in float order."""
    shared = [*PRETRAIN, "trainer.max_steps=8", "model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0"]
    succeeds(ONE, [*shared, "trainer.per_device_batch_size=8", f"output_dir={tmp_path / 'one'}"], cache_dir)
    succeeds(TWO, [*shared, "trainer.per_device_batch_size=4", f"output_dir={tmp_path / 'two'}"], cache_dir)

    one, two = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert len(one) == len(two) == 8
    worst = max(abs(a - b) / a for a, b in zip(one, two, strict=True))
    assert worst < 0.02, f"largest relative difference {worst:.4f}: {one} vs {two}"


def test_hydra_multirun_under_the_launcher(tmp_path, cache_dir):
    succeeds(TWO, ["-m", *PRETRAIN, "trainer.max_steps=2", "seed=1,2"], cache_dir, cwd=tmp_path)
    for seed in (1, 2):
        run_dir = tmp_path / "outputs" / "bertkit" / f"seed{seed}"
        assert metrics(run_dir)["throughput"]["processes"] == 2


@pytest.mark.parametrize(
    "launcher",
    [
        # torchrun-style processes without ACCELERATE_USE_CPU: each would train alone.
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", *COMMON],
        # accelerate's --cpu takes its single-process launcher: one process instead of two.
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", *COMMON],
    ],
    ids=["multi_gpu-without-gpus", "cpu-flag"],
)
def test_processes_that_do_not_form_one_group_are_refused(launcher, tmp_path, cache_dir):
    result = launch(launcher, [*PRETRAIN, "trainer.max_steps=2", f"output_dir={tmp_path / 'run'}"], cache_dir)
    assert result.returncode != 0
    assert "2 processes were asked for, but they do not form one training group" in result.stderr
    assert "--cpu --num_processes 2" in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
