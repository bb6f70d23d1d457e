"""Sweeps that never collide, and their summary: per setting, each metric over seeds, the best by the median."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from bertkit import summarize

from .conftest import ROOT, TINY_OVERRIDES


def fake_run(folder, learning_rate: float, seed: int, f1: float) -> None:
    folder.mkdir(parents=True)
    config = {"name": "rte", "seed": seed, "output_dir": str(folder), "trainer": {"learning_rate": learning_rate}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {"validation": {"f1": f1, "accuracy": f1 - 0.1, "examples": 8}, "headline_metric": "validation/f1",
               "throughput": {"steps": 3}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_runs_are_grouped_by_the_settings_that_differ_and_the_best_is_the_best_median(tmp_path):
    scores = {1e-5: [0.60, 0.70, 0.95], 2e-5: [0.72, 0.74, 0.50]}  # means 0.75 vs 0.65, medians 0.70 vs 0.72
    for rate, values in scores.items():
        for seed, f1 in enumerate(values, start=1):
            fake_run(tmp_path / f"lr{rate}" / f"seed{seed}", rate, seed, f1)
    (tmp_path / "lr1e-05" / "seed1" / "earlier" / "step_3").mkdir(parents=True)  # kept results are not runs
    summary = summarize.summarize(summarize.find_runs([tmp_path]))
    assert summary["settings_that_differ"] == ["trainer.learning_rate"]
    rows = {row["setting"]: row for row in summary["groups"]}
    low = rows["trainer.learning_rate=1e-05"]["metrics"]["validation/f1"]
    assert (low["median"], low["min"], low["max"], low["n"]) == (0.70, 0.60, 0.95, 3)
    assert low["mean"] == pytest.approx(0.75) and low["sd"] == pytest.approx(0.1803, abs=1e-4)
    assert summary["best"] == "trainer.learning_rate=2e-05"  # by the median, not the mean
    table = summarize.markdown(summary)
    assert "| trainer.learning_rate=2e-05 (best) | 1, 2, 3 | 0.72; 0.6533 ± 0.13 [0.5, 0.74] |" in table
    assert "examples" not in table


def test_the_command_writes_the_summary_and_names_a_bad_folder(tmp_path, capsys):
    fake_run(tmp_path / "a" / "seed1", 1e-5, 1, 0.5)
    assert summarize.main([str(tmp_path), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "sweep_summary.md").is_file() and (tmp_path / "out" / "sweep_summary.json").is_file()
    assert summarize.main([str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def multirun(folder, cache_dir, *overrides: str) -> None:
    """`python bertkit/train.py -m` of 2-step tiny pretraining runs, in `folder`."""
    args = [sys.executable, str(ROOT / "bertkit" / "train.py"), "-m", *TINY_OVERRIDES, "trainer.max_steps=2",
            f"cache_dir={cache_dir}", *overrides]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_a_multirun_gives_each_setting_its_folder_and_ends_with_the_summary(tmp_path, cache_dir):
    """`python bertkit/train.py -m ... trainer.learning_rate=1e-4,2e-4 seed=1,2`: four jobs, four folders."""
    multirun(tmp_path, cache_dir, "name=sweep", "trainer.learning_rate=1e-4,2e-4", "seed=1,2")
    sweep = tmp_path / "outputs" / "sweep"
    runs = sorted(str(p.parent.relative_to(sweep)) for p in sweep.rglob("metrics.json"))
    assert runs == ["trainer.learning_rate=0.0001/seed1", "trainer.learning_rate=0.0001/seed2",
                    "trainer.learning_rate=0.0002/seed1", "trainer.learning_rate=0.0002/seed2"]  # fmt: skip
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert [row["seeds"] for row in summary["groups"]] == [[1, 2], [1, 2]]
    assert summary["headline_metric"] == "heldout/mlm_accuracy"


@pytest.mark.slow
def test_an_optuna_search_gives_each_trial_its_folder_and_optimizes_the_headline_metric(tmp_path, cache_dir):
    """`python bertkit/train.py -m ... hparams_search=optuna hydra.sweeper.n_trials=2`: two trials, two folders."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    multirun(tmp_path, cache_dir, "name=search", "hparams_search=optuna", "hydra.sweeper.n_trials=2")
    sweep = tmp_path / "outputs" / "search"
    runs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(runs) == 2 and runs[0] != runs[1]
    assert all(str(run.relative_to(sweep)).startswith("trainer.learning_rate=") for run in runs)
    scores = [json.loads((run / "metrics.json").read_text())["heldout"]["mlm_accuracy"] for run in runs]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(scores))
    assert (sweep / "sweep_summary.md").is_file()
