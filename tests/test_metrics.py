"""Offline metrics: the local evaluate module against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bertkit import metrics
from bertkit.data.bundle import TaskKind, TaskSpec


def test_pretraining_scores_match_hand_computed_values():
    task = TaskSpec(
        kind=TaskKind.pretraining,
        vocab_size=50,
        pad_token_id=0,
        max_seq_length=8,
        metric_args={"majority_token_id": 7, "majority_nsp_label": 1},
    )
    outputs = {
        "mlm_labels": np.array([[7, -100, 9, 4], [7, 3, -100, -100]]),
        "mlm_predictions": np.array([[7, -100, 1, 4], [2, 3, -100, -100]]),
        "mlm_losses": np.array([[0.5, 0.0, 2.5, 0.25], [1.0, 0.75, 0.0, 0.0]]),
        "nsp_predictions": np.array([0, 1, 1, 0, 1]),
        "nsp_labels": np.array([0, 1, 0, 0, 0]),
    }
    scores = metrics.scorer(task)(outputs)
    assert scores["mlm_predictions"] == 5
    assert scores["mlm_accuracy"] == pytest.approx(3 / 5)  # 7, 4 and 3 right; 9 and 7 wrong
    assert scores["mlm_loss"] == pytest.approx((0.5 + 2.5 + 0.25 + 1.0 + 0.75) / 5)
    assert scores["perplexity"] == pytest.approx(math.exp(1.0))
    assert scores["mlm_majority_baseline_accuracy"] == pytest.approx(2 / 5)  # two references are token 7
    assert scores["nsp_accuracy"] == pytest.approx(3 / 5)
    assert scores["nsp_majority_baseline_accuracy"] == pytest.approx(1 / 5)  # always "random next"


def test_metric_module_loads_by_path_and_rejects_unknown_configs():
    module = metrics.load("pretraining", "nsp")
    assert module.compute(predictions=[1, 1], references=[1, 0])["accuracy"] == 0.5
    with pytest.raises(KeyError):
        metrics.load("pretraining", "glue")
