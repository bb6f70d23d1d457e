"""Experiment tracking through Accelerate's trackers: what log.jsonl gets, the configuration and the final
metrics, read back from TensorBoard's event files and a local MLflow store."""

from __future__ import annotations

import json

import pytest

from bertkit import train
from bertkit.core.errors import ConfigError
from bertkit.training import tracking

from .conftest import compose_config
from .test_selection import ft  # noqa: F401  (the tiny fine-tuning run's fixture)


def test_an_unknown_or_missing_tracker_stops_before_any_work(monkeypatch):
    with pytest.raises(ConfigError, match=r"trainer\.report_to: 'tensorbored' is not a tracker Accelerate supports"):
        tracking.check_trackers(["tensorbored"])
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"wandb is not installed; pip install wandb"):
        tracking.check_trackers(["wandb"])


def test_tensorboard_gets_the_log_records_the_configuration_and_the_final_metrics(ft, tmp_path):  # noqa: F811
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train.run(compose_config(ft("trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=1",
                                "trainer.report_to=[tensorboard]")))  # fmt: skip
    events = sorted((tmp_path / "run" / "tracking").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file below <output_dir>/tracking/"
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
    assert [step for step, _ in scalars["train/loss"]] == [step for step, _ in losses]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([v for _, v in losses], rel=1e-6)
    assert [step for step, _ in scalars["eval/validation/accuracy"]] == [2, 4]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert scalars["final/validation/accuracy"][0][1] == pytest.approx(metrics["validation"]["accuracy"])


def test_mlflow_gets_the_same_into_a_local_store(ft, tmp_path, monkeypatch):  # noqa: F811
    import mlflow

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 prefers a database; a folder is enough here
    train.run(compose_config(ft("trainer.max_steps=2", "trainer.eval_every=1", "trainer.log_every=1",
                                "trainer.report_to=[mlflow]", "name=tracked", "seed=7")))  # fmt: skip
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.data.params["trainer.learning_rate"] == "2e-05" and run.data.params["seed"] == "7"
    assert {"train/loss", "eval/validation/accuracy", "final/validation/accuracy"} <= set(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "eval/validation/accuracy")
    assert [m.step for m in history] == [1, 2]
