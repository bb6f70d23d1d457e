"""Best checkpoint and early stopping: the rules on their own, then whole tiny fine-tuning runs."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from bertkit import train
from bertkit.core.errors import ConfigError
from bertkit.settings import TrainerConfig
from bertkit.training.selection import Selection
from bertkit.training.state import LoopState

from .conftest import compose_config
from .test_hostile_runs import write_csv


def observe_all(selection: Selection, values: list[float], metric: str = "f1") -> LoopState:
    state = LoopState()
    for step, value in enumerate(values, start=1):
        state.step = step
        verdict = selection.observe({"validation": {metric: value}}, state)
        if verdict.stop_reason:
            state.stopped_early = verdict.stop_reason
            break
    return state


def test_the_best_is_the_headline_metric_of_the_first_split_higher_is_better():
    selection = Selection(TrainerConfig(eval_every=1), ("f1", "accuracy"), ["validation", "test"])
    assert selection.name == "validation/f1"
    state = observe_all(selection, [0.5, 0.7, 0.6, 0.7])
    assert (state.best_step, state.best_value) == (2, 0.7)  # an equal score later is no improvement


def test_losses_are_better_lower_unless_told():
    by_loss = TrainerConfig(eval_every=1, metric_for_best="validation/loss")
    state = observe_all(Selection(by_loss, ("f1",), ["validation"]), [3.0, 2.0, 2.5], metric="loss")
    assert state.best_step == 2
    told = TrainerConfig(eval_every=1, metric_for_best="loss", greater_is_better=True)
    assert observe_all(Selection(told, ("f1",), ["validation"]), [3.0, 2.0, 2.5], metric="loss").best_step == 1


def test_patience_counts_evaluations_without_an_improvement_beyond_the_threshold():
    cfg = TrainerConfig(eval_every=1, early_stopping_patience=2, early_stopping_threshold=0.01)
    state = observe_all(Selection(cfg, ("f1",), ["validation"]), [0.5, 0.505, 0.508, 0.9])
    # 0.505 and 0.508 are new bests (their weights are kept) but not improvements beyond 0.01: stop at step 3.
    assert state.step == 3 and state.best_step == 3
    assert "validation/f1 did not improve by more than 0.01 in 2 evaluations" in state.stopped_early


def test_a_metric_the_evaluation_lacks_is_named_with_those_it_has():
    selection = Selection(TrainerConfig(eval_every=1, metric_for_best="f2"), ("f1",), ["validation"])
    with pytest.raises(ConfigError, match=r"trainer\.metric_for_best: validation/f2 is not a number .*validation/f1"):
        selection.observe({"validation": {"f1": 0.5}}, LoopState())
    with pytest.raises(ConfigError, match=r"names split 'dev'; the evaluation splits are \['validation'\]"):
        Selection(TrainerConfig(eval_every=1, metric_for_best="dev/f1"), ("f1",), ["validation"])


def test_early_stopping_without_evaluations_is_refused_at_start():
    with pytest.raises(ConfigError, match=r"early_stopping_patience: needs evaluations during training"):
        TrainerConfig(early_stopping_patience=2)


@pytest.fixture
def ft(tmp_path, cache_dir, tiny_checkpoint):
    def make(*extra: str) -> list[str]:
        data = write_csv(tmp_path / "train.csv", ["0", "1"], rows=80)
        return ["data=custom", "model=pretrained", "trainer=finetune", f"model.name_or_path={tiny_checkpoint}",
                f"data.train_file={data}", "trainer.per_device_batch_size=8", "trainer.eval_batch_size=16",
                "trainer.progress_bar=false", "trainer.eval_every_epoch=false", f"output_dir={tmp_path / 'run'}",
                f"cache_dir={cache_dir}", *extra]  # fmt: skip

    return make


def test_model_holds_the_best_evaluations_weights_and_keep_last_spares_its_checkpoint(ft, tmp_path):
    """MRPC-style: evaluate every step; model/ is the best evaluation's, and metrics.json says which."""
    overrides = ft("trainer.max_steps=6", "trainer.eval_every=1", "trainer.keep_last=1", "trainer.learning_rate=5e-3")
    scores = train.run(compose_config(overrides))
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())["best"]
    assert best["metric"] == "validation/accuracy" and 1 <= best["step"] <= 6
    evaluations = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    accuracy = {r["step"]: r["eval"]["validation"]["accuracy"] for r in evaluations if "eval" in r}
    assert best["value"] == max(accuracy.values()) == accuracy[best["step"]]
    assert best["step"] == min(step for step, value in accuracy.items() if value == best["value"])
    assert scores["validation"]["accuracy"] == best["value"]
    kept = tmp_path / "run" / "checkpoints" / f"step_{best['step']}"
    assert kept.is_dir()  # keep_last=1 kept the last step's checkpoint and the best one
    weights = load_file(tmp_path / "run" / "model" / "model.safetensors")
    reference = load_file(kept / "model.safetensors")
    assert all((weights[name] == reference[name]).all() for name in weights)
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"Weights of the best evaluation: step {best['step']}" in card


def test_early_stopping_ends_training_and_says_when_and_why(ft, tmp_path, caplog):
    overrides = ft("trainer.max_steps=20", "trainer.eval_every=1", "trainer.learning_rate=1e-12",
                   "trainer.early_stopping_patience=2")  # fmt: skip
    train.run(compose_config(overrides))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["stopped_early"]["step"] == 3 and metrics["throughput"]["steps"] == 3
    assert "did not improve by more than 0.0 in 2 evaluations (best" in metrics["stopped_early"]["reason"]
    assert metrics["best"]["step"] == 1
    # Started again, the finished run trains nothing.
    train.run(compose_config(overrides))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics
