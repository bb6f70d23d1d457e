"""The Trainer's parts in-process, on a tiny model and a toy task: accumulation boundaries, non-finite steps
(stop and skip), the time budget, signal stops and the resume position."""

from __future__ import annotations

import json
import signal
from dataclasses import replace

import datasets
import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from bertkit.core.task import TaskData, TaskSpec
from bertkit.settings import TrainerConfig
from bertkit.training.accelerator import make_accelerator
from bertkit.training.stopping import Interrupted, TrainingError
from bertkit.training.trainer import Trainer

EXAMPLES = 10


class ToyTask:
    """Two classes told apart by the first token; scored by accuracy."""

    headline_metrics = ("accuracy",)

    def gather(self, batch, output):
        return {"logits": output.logits.float(), "labels": batch["labels"]}

    def decode(self, split, gathered):
        return gathered["logits"].argmax(axis=-1), gathered["labels"]

    def score(self, split, decoded):
        return {"accuracy": float((decoded[0] == decoded[1]).mean()), "examples": len(decoded[1])}


def collate(features):
    batch = {name: torch.tensor([f[name] for f in features]) for name in ("input_ids", "labels")}
    return {**batch, "attention_mask": torch.ones_like(batch["input_ids"])}


def toy_data() -> TaskData:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, EXAMPLES)
    ids = np.concatenate([labels[:, None] + 5, rng.integers(7, 30, (EXAMPLES, 5))], axis=1)
    rows = datasets.Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist()})
    return TaskData(
        spec=TaskSpec(vocab_size=30, pad_token_id=0, max_seq_length=6),
        train=rows,
        evaluation={"validation": rows.select(range(4))},
        collate_train=collate,
        collate_eval=collate,
    )


def toy_model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)  # fmt: skip
    return BertForSequenceClassification(config)


SETTINGS = TrainerConfig(per_device_batch_size=2, eval_batch_size=4, learning_rate=1e-3, log_every=1,
                         progress_bar=False)  # fmt: skip


def trainer(tmp_path, model=None, **settings) -> Trainer:
    cfg = replace(SETTINGS, **settings)
    accelerator = make_accelerator(cfg, seed=0)
    return Trainer(accelerator, cfg, model or toy_model(), toy_data(), ToyTask(), tmp_path, seed=0)


def log_records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]


def test_accumulation_steps_at_boundaries_and_at_the_end_of_each_epoch(tmp_path):
    """5 micro-batches an epoch, 2 per step: steps after micro-batches 2, 4 and 5 (the epoch's rest)."""
    run = trainer(tmp_path, gradient_accumulation_steps=2, num_epochs=2)
    assert run.total_steps == 6
    boundaries, micro_step = [], run.micro_step

    def recording(batch):
        boundaries.append(micro_step(batch))
        return boundaries[-1]

    run.micro_step = recording
    result = run.fit()
    assert boundaries == [False, True, False, True, True] * 2
    assert result.throughput["steps"] == 6 and (run.state.epoch, run.state.batch_in_epoch) == (1, 5)  # the last epoch
    assert [r["step"] for r in log_records(tmp_path) if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert result.scores["validation"]["examples"] == 4


def poison(model, at_forward: int):
    """The loss of the model's `at_forward`-th training forward pass becomes NaN."""
    forward, calls = model.forward, []

    def poisoned(*args, **kwargs):
        output = forward(*args, **kwargs)
        if model.training:
            calls.append(1)
            if len(calls) == at_forward:
                output.loss = output.loss * float("nan")
        return output

    model.forward = poisoned
    return model


def test_nonfinite_gradients_stop_the_run_naming_the_step(tmp_path):
    run = trainer(tmp_path, model=poison(toy_model(), at_forward=3), max_steps=5)
    with pytest.raises(TrainingError, match="not finite at step 3"):
        run.fit()


def test_nonfinite_gradients_can_be_skipped_and_counted(tmp_path):
    model = poison(toy_model(), at_forward=3)
    run = trainer(tmp_path, model=model, max_steps=5, on_nonfinite_loss="skip")
    weights = {}  # before each update, by the number of steps taken

    def remember(batch):
        weights[run.state.step] = [p.detach().clone() for p in model.parameters()]
        return Trainer.micro_step(run, batch)

    run.micro_step = remember
    result = run.fit()
    assert result.throughput["skipped_nonfinite_steps"] == 1 and result.throughput["steps"] == 5
    skipped = [r for r in log_records(tmp_path) if r.get("step") == 3 and "eval" not in r]
    assert skipped == [{**skipped[0], "skipped_update": True}] and "loss" not in skipped[0]
    assert all(torch.equal(a, b) for a, b in zip(weights[2], weights[3], strict=True))  # step 3 changed nothing
    assert not all(torch.equal(a, b) for a, b in zip(weights[1], weights[2], strict=True))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_time_budget_ends_training_after_the_step_it_runs_out_in(tmp_path):
    result = trainer(tmp_path, max_steps=50, max_minutes=1e-9).fit()
    assert result.throughput["steps"] == 1
    assert "validation" in result.scores  # evaluated as at a planned end


def test_a_signal_saves_a_checkpoint_after_the_step_and_stops(tmp_path):
    run = trainer(tmp_path, max_steps=8)
    micro_step = run.micro_step

    def interrupted_at_step_3(batch):
        stepped = micro_step(batch)
        if run.state.step == 2 and stepped:
            signal.raise_signal(signal.SIGTERM)  # caught: training stops after this step
        return stepped

    run.micro_step = interrupted_at_step_3
    with pytest.raises(Interrupted, match="SIGTERM at step 3") as stopped:
        run.fit()
    assert stopped.value.signum == signal.SIGTERM
    assert (tmp_path / "checkpoints" / "step_3").is_dir()


def test_a_new_trainer_resumes_at_the_saved_position(tmp_path):
    first = trainer(tmp_path, max_steps=3, save_every=3, num_epochs=4)
    first.fit()
    resumed = trainer(tmp_path, max_steps=7, save_every=3, num_epochs=4)
    assert (resumed.state.step, resumed.state.epoch, resumed.state.batch_in_epoch) == (3, 0, 3)
    assert resumed.log_file.path.read_text()  # the log goes on from where it was
    result = resumed.fit()
    assert result.throughput["steps"] == 7 and resumed.state.epoch == 1 and resumed.state.batch_in_epoch == 2
