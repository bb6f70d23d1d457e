"""Which evaluation is the best so far, and whether training should stop early because none improves.

The metric is `trainer.metric_for_best` ("split/metric" or a metric of the first evaluation split; default:
the task's headline metric on its first evaluation split). Every process sees the same gathered scores, so
every process takes the same decisions: all stop together. What is decided lives in the loop state, so a
resumed run continues with the same best and the same patience.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bertkit.core.batch import is_number
from bertkit.core.errors import ConfigError
from bertkit.settings import TrainerConfig
from bertkit.training.state import LoopState

LOWER_IS_BETTER = ("loss", "perplexity", "mse", "error")
"""Metric name endings where smaller values are better."""


@dataclass(frozen=True)
class Verdict:
    improved: bool
    """A new best: its weights are kept."""
    stop_reason: str | None
    """Set when early stopping ends training here."""


class Selection:
    """Tracks the best evaluation (in the loop state) and counts evaluations without improvement."""

    def __init__(self, cfg: TrainerConfig, headline: tuple[str, ...], splits: list[str]) -> None:
        self.split, self.metric = _metric(cfg.metric_for_best, headline, splits)
        self.greater = cfg.greater_is_better
        if self.greater is None:
            self.greater = not self.metric.endswith(LOWER_IS_BETTER)
        self.patience, self.threshold = cfg.early_stopping_patience, cfg.early_stopping_threshold

    @property
    def name(self) -> str:
        return f"{self.split}/{self.metric}"

    def observe(self, scores: dict[str, dict[str, Any]], state: LoopState) -> Verdict:
        """One evaluation's scores: a new best? time to stop?"""
        value = self._value(scores)
        best = state.best_value
        improved = best is None or (value > best if self.greater else value < best)
        enough = best is None or (value - best if self.greater else best - value) > self.threshold
        state.evaluations_without_improvement = 0 if enough else state.evaluations_without_improvement + 1
        if improved:
            state.best_step, state.best_value = state.step, value
        if self.patience is None or state.evaluations_without_improvement < self.patience:
            return Verdict(improved, None)
        reason = (
            f"{self.name} did not improve by more than {self.threshold} in {self.patience} evaluations "
            f"(best {state.best_value:.4g} at step {state.best_step})"
        )
        return Verdict(improved, reason)

    def _value(self, scores: dict[str, dict[str, Any]]) -> float:
        found = scores.get(self.split, {}).get(self.metric)
        if not is_number(found) or math.isnan(found):
            known = ", ".join(f"{s}/{m}" for s, metrics in scores.items() for m, v in metrics.items() if is_number(v))
            raise ConfigError(
                f"invalid setting trainer.metric_for_best: {self.name} is not a number this evaluation gives "
                f"(it gives {known})"
            )
        return float(found)

    def best(self, state: LoopState) -> dict[str, Any] | None:
        """metrics.json's "best": the step, the metric and its value."""
        if state.best_step is None:
            return None
        return {"step": state.best_step, "metric": self.name, "value": state.best_value}


def _metric(setting: str | None, headline: tuple[str, ...], splits: list[str]) -> tuple[str, str]:
    """(split, metric) named by trainer.metric_for_best, or the task's headline on its first evaluation split."""
    if not splits:
        raise ConfigError("invalid setting trainer.metric_for_best: the task has no evaluation split to select on")
    if setting is None:
        return splits[0], headline[0]
    split, _, metric = setting.rpartition("/")
    split = split or splits[0]
    if split not in splits:
        raise ConfigError(
            f"invalid setting trainer.metric_for_best: {setting!r} names split {split!r}; the evaluation splits "
            f"are {splits}"
        )
    return split, metric
