"""Rank-0 writers of a run's results: config.yaml, metrics.json, predictions/, the model/ folder with its
card, curves.png.

Everything here runs on the main process only, after the inputs were validated and training finished, so
a run that fails on bad input leaves an earlier run's files as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from bertkit.config import RunConfig
from bertkit.core.atomic import atomic_write
from bertkit.core.batch import is_number
from bertkit.core.errors import ConfigError
from bertkit.core.result import TrainResult
from bertkit.core.task import TaskData
from bertkit.tasks.base import CardFacts, Task
from bertkit.tasks.registry import RECIPE_KEY, recipe_record

ENCODER_NAMES = {"bert": "BERT", "roberta": "RoBERTa", "distilbert": "DistilBERT", "albert": "ALBERT",
                 "electra": "ELECTRA", "deberta-v2": "DeBERTa-v2", "xlm-roberta": "XLM-RoBERTa",
                 "modernbert": "ModernBERT"}  # fmt: skip
MODEL_DIR = "model"
PREDICTIONS_DIR = "predictions"
NOT_SCORES = ("data", "throughput", "timings_seconds", "predictions", "best", "stopped_early", "headline_metric")
"""metrics.json's keys besides the scores of each split."""


def read_scores(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The scores of a finished run, from its metrics.json."""
    return scores_of(json.loads((run_dir / "metrics.json").read_text()))


def scores_of(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-split scores of a metrics.json, without what else it records."""
    return {split: scores for split, scores in metrics.items() if split not in NOT_SCORES}


def objective_value(run_dir: Path, metric: str | None) -> float:
    """The score a hyperparameter search optimizes: `metric` (split/name) of the run's metrics.json, or, for
    None, its headline metric."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    name = metric or metrics.get("headline_metric", "")
    split, _, key = name.partition("/")
    value = scores_of(metrics).get(split, {}).get(key)
    if not is_number(value):
        known = [f"{s}/{k}" for s, scores in scores_of(metrics).items() for k, v in scores.items() if is_number(v)]
        raise ConfigError(f"invalid setting optimized_metric: {name!r} is not a score of this run ({known[:12]})")
    return float(value)


def write_results(
    run: RunConfig,
    run_dir: Path,
    result: TrainResult,
    tokenizer: PreTrainedTokenizerBase,
    task: Task[Any],
    data: TaskData,
    timings: dict[str, float],
    fresh_modules: list[str],
) -> dict[str, Any]:
    """metrics.json, predictions/, model/ (a plain Hugging Face folder with a model card) and curves.png."""
    predictions = {
        name: text
        for split, decoded in result.predictions.items()
        for name, text in task.prediction_files(split, decoded).items()
    }
    for name, text in predictions.items():
        (run_dir / PREDICTIONS_DIR).mkdir(exist_ok=True)
        atomic_write(run_dir / PREDICTIONS_DIR / name, text)
    metrics = {
        **result.scores,
        "data": data.stats,
        "throughput": result.throughput,
        "timings_seconds": timings,
        "predictions": sorted(f"{PREDICTIONS_DIR}/{name}" for name in predictions),
    }
    metrics["headline_metric"] = f"{next(iter(result.scores), '')}/{task.headline_metrics[0]}"
    metrics |= {"best": result.best} if result.best else {}
    metrics |= {"stopped_early": result.stopped_early} if result.stopped_early else {}
    atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    card = model_card(run, result, task, data, fresh_modules)
    recipe = {RECIPE_KEY: recipe_record(run.data, task.tuned_settings())}
    save_model(result.model, result.state_dict, tokenizer, run_dir / MODEL_DIR, card, recipe)
    plot_curves(run_dir / "log.jsonl", run_dir / "curves.png", task.headline_metrics)
    return metrics


def without_tied_copies(model, state_dict: dict[str, Any] | None) -> dict[str, Any] | None:
    """The state dict without the tied weights' second names (the MLM decoder's, which from_pretrained ties
    back). save_pretrained drops them only when they share memory, and weights gathered from FSDP shards
    are separate copies: BERT's decoder would be saved twice."""
    if state_dict is None:
        return None
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    return {name: tensor for name, tensor in state_dict.items() if tied.get(name) not in state_dict}


def save_model(
    model, state_dict, tokenizer: PreTrainedTokenizerBase, folder: Path, card: str, recipe: dict[str, Any]
) -> None:
    """save_pretrained (safetensors) + tokenizer + README.md, written beside and swapped in when complete.

    `state_dict` holds the full weights gathered from every process (FSDP and DeepSpeed shard them); `recipe`
    joins config.json's task_specific_params (how the data was read, for `bertkit predict`)."""
    staging = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(staging, state_dict=without_tied_copies(model, state_dict), safe_serialization=True)
    # bertkit's speed-ups subclass transformers' models; the folder names the transformers class,
    # so `from_pretrained` and pipelines load it without bertkit.
    exported = next(c.__name__ for c in type(model).__mro__ if c.__module__.startswith("transformers."))
    config_path = staging / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = [exported]
    config["task_specific_params"] = {**(config.get("task_specific_params") or {}), **recipe}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(staging)
    (staging / "README.md").write_text(card)
    if folder.exists():
        previous = folder.with_name(folder.name + ".old")
        folder.rename(previous)
        staging.rename(folder)
        _remove_tree(previous)
    else:
        staging.rename(folder)


def model_card(run: RunConfig, result: TrainResult, task: Task[Any], data: TaskData, fresh_modules: list[str]) -> str:
    """A Hugging Face model card: what was trained on what, with which settings, and how well."""
    cfg = cast(PretrainedConfig, result.model.config)
    origin = f"continued from `{run.model.name_or_path}`" if run.model.name_or_path else "trained from scratch"
    if run.model.name_or_path and fresh_modules:
        origin += f" (its {', '.join(f'`{m}`' for m in fresh_modules)} started from random initialisation)"
    facts = task.card()
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {facts.pipeline_tag}",
        f"tags: [{cfg.model_type}, bertkit]",
        "---",
        "",
        f"# {run.name}",
        "",
        f"A {ENCODER_NAMES.get(cfg.model_type, cfg.model_type)} ({cfg.num_hidden_layers} layers, hidden size "
        f"{cfg.hidden_size}, {cfg.num_attention_heads} heads, vocabulary {cfg.vocab_size}) {origin} with bertkit, "
        f"on {data.description}.",
    ]
    if facts.head:
        lines += ["", f"Task head: {facts.head}."]
    lines += _stats_table(data.stats)
    lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in _settings(run, result, task, facts).items()]
    lines += _evaluation_section(result)
    lines += ["", "## Use", "", "```python", facts.usage, "```", ""]
    return "\n".join(lines)


def _evaluation_section(result: TrainResult) -> list[str]:
    """Which weights these are (the best evaluation's, or the last), and their scores per split."""
    lines = ["", "## Evaluation", ""]
    if result.best:
        step, metric, value = result.best["step"], result.best["metric"], _fmt(result.best["value"])
        lines += [f"Weights of the best evaluation: step {step:,} ({metric} {value}).", ""]
    if result.stopped_early:
        step, reason = result.stopped_early["step"], result.stopped_early["reason"]
        lines += [f"Training stopped early at step {step:,}: {reason}.", ""]
    lines += ["| split | metric | value |", "|---|---|---|"]
    for split, scores in result.scores.items():
        lines += [f"| {split} | {metric} | {_fmt(value)} |" for metric, value in scores.items()]
    return lines


def _stats_table(stats: dict[str, dict[str, Any]]) -> list[str]:
    """The card's data section: one row per split, one column per statistic."""
    columns = list(dict.fromkeys(key for numbers in stats.values() for key in numbers))
    lines = ["", "## Data", "", "| split | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for split, numbers in stats.items():
        lines.append(f"| {split} | " + " | ".join(_fmt(numbers.get(key, "")) for key in columns) + " |")
    return lines


def _settings(run: RunConfig, result: TrainResult, task: Task[Any], facts: CardFacts) -> dict[str, Any]:
    trainer = run.trainer
    return {
        "seed": run.seed,
        "max_seq_length": task.max_seq_length,
        "per-device batch size": trainer.per_device_batch_size,
        "gradient accumulation": trainer.gradient_accumulation_steps,
        "processes": result.throughput.get("processes"),
        "learning rate": trainer.learning_rate,
        "schedule": f"{trainer.lr_scheduler}, warmup {trainer.warmup_steps or trainer.warmup_ratio}",
        "weight decay": trainer.weight_decay,
        "optimizer steps": result.throughput.get("steps"),
        "mixed precision": str(result.throughput.get("mixed_precision", trainer.mixed_precision)),
        **facts.settings,
    }


def plot_curves(log_path: Path, image_path: Path, headline: tuple[str, ...]) -> None:
    """Loss, learning rate and the task's headline metrics against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval" in r]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name in sorted({k for r in train for k in r if k.endswith("loss")}):
        axes[0].plot([r["step"] for r in train], [r[name] for r in train], label=name)
    axes[0].set(title="training loss", xlabel="step")
    axes[1].plot([r["step"] for r in train], [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="step")
    for split in sorted({s for r in evals for s in r["eval"]}):
        for metric in headline:
            points = [(r["step"], r["eval"][split][metric]) for r in evals if metric in r["eval"].get(split, {})]
            if points:
                axes[2].plot(*zip(*points, strict=True), marker="o", label=f"{split} {metric}")
    axes[2].set(title="evaluation", xlabel="step")
    for axis in (axes[0], axes[2]):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(image_path, dpi=100)
    plt.close(figure)


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
