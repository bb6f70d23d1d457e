"""Checkpoints: whole or ignored, the newest K kept, resumed only into the same run; non-finite losses."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from bertkit import model, train
from bertkit.core.errors import ConfigError
from bertkit.training import checkpoints as checkpoint
from bertkit.training.stopping import TrainingError

from .conftest import compose_config


def steps_logged(run_dir) -> list[int]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [record["step"] for record in records if "loss" in record]


def test_keep_last_k_keeps_the_newest_and_each_holds_its_position(tiny_run, tmp_path):
    train.run(compose_config(tiny_run("trainer.max_steps=5", "trainer.save_every=1", "trainer.keep_last=2")))
    folder = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoint.complete(folder)] == ["step_4", "step_5"]
    assert sorted(p.name for p in folder.iterdir()) == ["step_4", "step_5"]
    position = json.loads((folder / "step_5" / checkpoint.LOOP_STATE).read_text())
    assert position["step"] == 5 and position["batch_in_epoch"] >= 0
    # Nothing in a checkpoint needs unpickling: Accelerate's own files plus JSON.
    assert not list(folder.glob("step_5/custom_checkpoint_*"))


def test_a_partial_checkpoint_is_ignored_with_a_warning(tiny_run, tmp_path, caplog):
    train.run(compose_config(tiny_run("trainer.max_steps=3", "trainer.save_every=3")))
    folder = tmp_path / "run" / "checkpoints"
    partial = folder / "step_7.tmp"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half a file")
    incomplete = folder / "step_9"  # renamed but missing its loop state: not a complete checkpoint either
    incomplete.mkdir()
    with caplog.at_level(logging.INFO, logger="bertkit"):
        train.run(compose_config(tiny_run("trainer.max_steps=5", "trainer.save_every=5")))
    assert f"Ignoring {partial}" in caplog.text
    assert "Resumed from" in caplog.text and "step_3 (step 3" in caplog.text
    assert steps_logged(tmp_path / "run") == [1, 2, 3, 4, 5]


def test_a_run_directory_with_other_settings_is_refused_and_left_alone(tiny_run, tmp_path):
    train.run(compose_config(tiny_run("trainer.max_steps=3", "trainer.save_every=3")))
    run_dir = tmp_path / "run"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError) as error:
        train.run(compose_config(tiny_run("trainer.max_steps=6", "trainer.learning_rate=0.5")))
    message = str(error.value)
    assert "holds a run with another configuration (trainer.learning_rate: 0.0001 there, 0.5 now)" in message
    assert "choose another output_dir" in message and "trainer.resume=force" in message
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before

    # A larger budget is not another run: it resumes.
    train.run(compose_config(tiny_run("trainer.max_steps=4", "trainer.save_every=3")))
    assert steps_logged(run_dir) == [1, 2, 3, 4]
    # On purpose, with a new learning rate for the rest of the run.
    train.run(compose_config(tiny_run("trainer.max_steps=6", "trainer.save_every=3", "trainer.learning_rate=5e-5",
                                      "trainer.resume=force")))  # fmt: skip
    assert steps_logged(run_dir) == [1, 2, 3, 4, 5, 6]


def test_a_run_from_before_a_setting_existed_resumes_when_it_has_its_default(tiny_run, tmp_path):
    train.run(compose_config(tiny_run("trainer.max_steps=3", "trainer.save_every=3")))
    config_file = tmp_path / "run" / "config.yaml"
    older = "".join(line for line in config_file.read_text().splitlines(True) if "group_by_length" not in line)
    config_file.write_text(older)  # as a bertkit without trainer.group_by_length wrote it
    train.run(compose_config(tiny_run("trainer.max_steps=4", "trainer.save_every=3")))
    assert steps_logged(tmp_path / "run") == [1, 2, 3, 4]
    config_file.write_text(older)
    with pytest.raises(ConfigError, match=r"trainer.group_by_length: False there, True now"):
        train.run(compose_config(tiny_run("trainer.max_steps=5", "trainer.group_by_length=true")))


def test_resume_never_starts_over(tiny_run, tmp_path):
    train.run(compose_config(tiny_run("trainer.max_steps=3", "trainer.save_every=3")))
    train.run(compose_config(tiny_run("trainer.max_steps=3", "trainer.save_every=3", "trainer.resume=never")))
    assert steps_logged(tmp_path / "run") == [1, 2, 3]


@pytest.fixture
def poisoned_step(monkeypatch):
    """Make the loss of the 5th forward pass in training NaN."""
    build = model.build_model

    def build_poisoned(*args, **kwargs):
        built = build(*args, **kwargs)
        net = built.model
        forward, calls = net.forward, []

        def poisoned(*args, **kwargs):
            output = forward(*args, **kwargs)
            if net.training:
                calls.append(1)
                if len(calls) == 5:
                    output.loss = output.loss * float("nan")
            return output

        net.forward = poisoned
        return built

    monkeypatch.setattr(model, "build_model", build_poisoned)


@pytest.mark.parametrize("log_every", [1, 100])  # 100: noticed at the next checkpoint, not at a log line
def test_nonfinite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tiny_run, tmp_path, poisoned_step, log_every
):
    overrides = tiny_run("trainer.max_steps=8", "trainer.save_every=2", f"trainer.log_every={log_every}")
    with pytest.raises(TrainingError, match=r"not finite at step 5;.*trainer\.on_nonfinite_loss=skip"):
        train.run(compose_config(overrides))
    folder = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoint.complete(folder)] == ["step_2", "step_4"]
    weights = load_file(folder / "step_4" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_nonfinite_loss_can_skip_the_update(tiny_run, tmp_path, poisoned_step):
    train.run(compose_config(tiny_run("trainer.max_steps=8", "trainer.on_nonfinite_loss=skip")))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["throughput"]["skipped_nonfinite_steps"] == 1 and metrics["throughput"]["steps"] == 8
    weights = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_zero_steps_evaluates_the_model_as_it_is(tiny_run, tmp_path):
    train.run(compose_config(tiny_run("trainer.max_steps=3")))
    trained = tmp_path / "run" / "model"
    scores = train.run(
        compose_config(
            tiny_run(
                "model=pretrained",
                f"model.name_or_path={trained}",
                "trainer.max_steps=0",
                f"output_dir={tmp_path / 'eval'}",
            )
        )  # fmt: skip
    )
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())["heldout"]
    assert scores["heldout"] == first  # the same weights, the same held-out masks: the same scores
    assert (
        load_file(tmp_path / "eval" / "model" / "model.safetensors").keys()
        == load_file(trained / "model.safetensors").keys()
    )
