"""Offline metrics: the local evaluate module against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bertkit import metrics
from bertkit.tasks.classification.glue import GlueClassification, GlueDataConfig, GlueTask
from bertkit.tasks.classification.scores import classification_scores, glue_scores, regression_scores
from bertkit.tasks.classification.task import LabelSpace
from bertkit.tasks.pretraining.mlm_nsp import MaskedLMAndNextSentence
from bertkit.tasks.pretraining.scores import mlm_scores


def test_pretraining_scores_match_hand_computed_values():
    outputs = {
        "mlm_labels": np.array([[7, -100, 9, 4], [7, 3, -100, -100]]),
        "mlm_predictions": np.array([[7, -100, 1, 4], [2, 3, -100, -100]]),
        "mlm_losses": np.array([[0.5, 0.0, 2.5, 0.25], [1.0, 0.75, 0.0, 0.0]]),
        "nsp_predictions": np.array([0, 1, 1, 0, 1]),
        "nsp_labels": np.array([0, 1, 0, 0, 0]),
    }
    scores = MaskedLMAndNextSentence().score(outputs, majority_token=7, majority_label=1)
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


# GLUE and your-own-data metrics against values worked out by hand on fixed predictions.
GOLD = np.array([1, 1, 1, 0, 0, 0, 1, 0])
GUESS = np.array([1, 1, 0, 0, 0, 1, 1, 1])  # TP 3, FN 1, TN 2, FP 2


def test_glue_cola_matthews_correlation():
    tp, tn, fp, fn = 3, 2, 2, 1
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))  # 4 / sqrt(5 * 4 * 4 * 3)
    scores = glue_scores("cola", GUESS, GOLD)
    assert scores == {"matthews_correlation": pytest.approx(expected)}
    assert expected == pytest.approx(0.2581989)


def test_glue_mrpc_and_qqp_f1_of_the_positive_class_and_accuracy():
    precision, recall = 3 / 5, 3 / 4
    for task in ("mrpc", "qqp"):
        scores = glue_scores(task, GUESS, GOLD)
        assert scores["accuracy"] == pytest.approx(5 / 8)
        assert scores["f1"] == pytest.approx(2 * precision * recall / (precision + recall))  # 2/3


def test_glue_stsb_pearson_and_spearman():
    gold = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    guess = np.array([0.5, 0.4, 2.5, 2.0, 5.0])
    centred_gold, centred_guess = gold - gold.mean(), guess - guess.mean()
    pearson = (centred_gold @ centred_guess) / math.sqrt((centred_gold**2).sum() * (centred_guess**2).sum())
    # Ranks: gold 1..5; guess 2,1,4,3,5 -> Spearman = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6*4/120 = 0.8
    scores = glue_scores("stsb", guess, gold)
    assert scores["pearson"] == pytest.approx(pearson)
    assert scores["spearmanr"] == pytest.approx(0.8)


def test_glue_accuracy_tasks_and_unknown_task():
    for task in ("sst2", "mnli", "qnli", "rte", "wnli"):
        assert glue_scores(task, GUESS, GOLD) == {"accuracy": 5 / 8}
    with pytest.raises(KeyError, match="must be one of"):
        glue_scores("squad", GUESS, GOLD)
    with pytest.raises(KeyError, match="config name must be one of"):  # and so does its evaluate module
        metrics.load("glue", "squad")


def test_custom_classification_macro_f1_over_three_classes():
    gold = np.array([0, 0, 1, 1, 2, 2])
    guess = np.array([0, 1, 1, 1, 2, 0])
    # class 0: P 1/2 R 1/2 F 1/2; class 1: P 2/3 R 1 F 4/5; class 2: P 1 R 1/2 F 2/3
    scores = classification_scores(guess, gold)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["f1_macro"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)


def test_custom_regression_mean_squared_error():
    scores = regression_scores([1.0, 2.0, 4.0], [1.0, 3.0, 3.0])
    assert scores["mse"] == pytest.approx(2 / 3)
    assert scores["spearmanr"] == pytest.approx(0.8660254)  # ranks (1,2,3) vs (1,2.5,2.5)


def test_sequence_classification_task_turns_logits_into_labels_and_scores():
    task = GlueClassification(GlueDataConfig(task=GlueTask.mrpc))
    task.labels = LabelSpace(names=("not_equivalent", "equivalent"))
    logits = np.stack([1 - GUESS, GUESS], axis=1).astype(np.float32)
    decoded = task.decode("validation", {"logits": logits, "labels": GOLD})
    assert decoded.values.tolist() == GUESS.tolist()
    scores = task.score("validation", decoded)
    assert scores["accuracy"] == pytest.approx(5 / 8) and scores["examples"] == 8


def test_evaluate_modules_are_thin_adapters_giving_the_pure_functions_results_exactly():
    """A run scores with the tasks' pure functions; `evaluate.load` on bertkit's modules must agree to the bit,
    float32 inputs included (the modules store predictions and losses as float32)."""
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200).astype(np.float32)
    gold = (scores + rng.normal(size=200)).astype(np.float32)
    expected = glue_scores("stsb", scores, gold)
    assert metrics.load("glue", "stsb").compute(predictions=scores, references=gold) == expected
    assert metrics.load("classification", "regression").compute(
        predictions=scores, references=gold
    ) == regression_scores(scores, gold)
    ids, labels = rng.integers(0, 50, 300), rng.integers(0, 50, 300)
    losses = rng.exponential(size=300).astype(np.float32)
    module = metrics.load("pretraining", "mlm")
    adapted = module.compute(predictions=ids, references=labels, losses=losses, majority_prediction=3)
    assert adapted == mlm_scores(ids, labels, losses, 3)
