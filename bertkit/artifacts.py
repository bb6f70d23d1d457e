"""Rank-0 writers of a run's results: config.yaml, metrics.json, predictions/, the model/ folder with its
card, curves.png.

Everything here runs on the main process only, after the inputs were validated and training finished, so
a run that fails on bad input leaves an earlier run's files as they were.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from transformers import PreTrainedTokenizerBase

from bertkit.config import PretrainCorpusConfig, RunConfig
from bertkit.data.bundle import DataBundle, TaskKind
from bertkit.errors import ConfigError
from bertkit.loop import TrainResult

MODEL_DIR = "model"
PREDICTIONS_DIR = "predictions"
_PIPELINES = {
    TaskKind.pretraining: "fill-mask",
    TaskKind.sequence_classification: "text-classification",
    TaskKind.question_answering: "question-answering",
    TaskKind.token_classification: "token-classification",
}
_EXAMPLES = {
    TaskKind.pretraining: 'print(pipe("The function returns a [MASK] of strings."))',
    TaskKind.sequence_classification: 'print(pipe({"text": "first sentence", "text_pair": "second sentence"}))',
    TaskKind.token_classification: 'print(pipe("Peter Blackburn spoke in Brussels.", aggregation_strategy="first"))',
    TaskKind.question_answering: 'print(pipe(question="Who wrote it?", context="The book was written by Ann Lee."))',
}


def check_writable(run_dir: Path) -> None:
    """Fail at start-up, not after hours of training, when the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ConfigError(f"invalid setting output_dir: {run_dir} cannot be written ({error.strerror})") from None


def write_config(run: RunConfig, run_dir: Path) -> None:
    """The resolved configuration, so the run can be repeated with `--config-path`/overrides."""
    _atomic_write(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(run)))


def write_results(
    run: RunConfig,
    run_dir: Path,
    result: TrainResult,
    tokenizer: PreTrainedTokenizerBase,
    bundle: DataBundle,
    timings: dict[str, float],
) -> dict[str, Any]:
    """metrics.json, predictions/, model/ (a plain Hugging Face folder with a model card) and curves.png."""
    predictions = bundle.prediction_files(result.outputs)
    for name, text in predictions.items():
        (run_dir / PREDICTIONS_DIR).mkdir(exist_ok=True)
        _atomic_write(run_dir / PREDICTIONS_DIR / name, text)
    metrics = {
        **result.scores,
        "data": bundle.stats,
        "throughput": result.throughput,
        "timings_seconds": timings,
        "predictions": sorted(f"{PREDICTIONS_DIR}/{name}" for name in predictions),
    }
    _atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    save_model(result.model, result.state_dict, tokenizer, run_dir / MODEL_DIR, model_card(run, result, bundle))
    plot_curves(run_dir / "log.jsonl", run_dir / "curves.png")
    return metrics


def save_model(model, state_dict, tokenizer: PreTrainedTokenizerBase, folder: Path, card: str) -> None:
    """save_pretrained (safetensors) + tokenizer + README.md, written beside and swapped in when complete.

    `state_dict` holds the full weights gathered from every process (FSDP and DeepSpeed shard them)."""
    staging = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(staging, state_dict=state_dict, safe_serialization=True)
    # bertkit's speed-ups subclass transformers' models; the folder names the transformers class,
    # so `from_pretrained` and pipelines load it without bertkit.
    exported = next(c.__name__ for c in type(model).__mro__ if c.__module__.startswith("transformers."))
    config_path = staging / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = [exported]
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


def model_card(run: RunConfig, result: TrainResult, bundle: DataBundle) -> str:
    """A Hugging Face model card: what was trained on what, with which settings, and how well."""
    model = result.model
    cfg = model.config
    origin = f"continued from `{run.model.name_or_path}`" if run.model.name_or_path else "trained from scratch"
    task = bundle.task
    pipeline_tag = _PIPELINES[task.kind]
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {pipeline_tag}",
        "tags: [bert, bertkit]",
        "---",
        "",
        f"# {run.name}",
        "",
        f"A BERT ({cfg.num_hidden_layers} layers, hidden size {cfg.hidden_size}, "
        f"{cfg.num_attention_heads} heads, vocabulary {cfg.vocab_size}) {origin} with bertkit, "
        f"on {bundle.description}.",
    ]
    if task.kind == TaskKind.sequence_classification:
        head = "a regression head (one score)" if task.is_regression else f"labels {', '.join(task.id2label.values())}"
        lines += ["", f"Task head: {head}."]
    columns = list(dict.fromkeys(key for numbers in bundle.stats.values() for key in numbers))
    lines += ["", "## Data", "", "| split | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for split, numbers in bundle.stats.items():
        lines.append(f"| {split} | " + " | ".join(_fmt(numbers.get(key, "")) for key in columns) + " |")
    trainer = run.trainer
    settings = {
        "seed": run.seed,
        "max_seq_length": bundle.task.max_seq_length,
        "per-device batch size": trainer.per_device_batch_size,
        "gradient accumulation": trainer.gradient_accumulation_steps,
        "processes": result.throughput.get("processes"),
        "learning rate": trainer.learning_rate,
        "schedule": f"{trainer.lr_scheduler}, warmup {trainer.warmup_steps or trainer.warmup_ratio}",
        "weight decay": trainer.weight_decay,
        "optimizer steps": result.throughput.get("steps"),
        "mixed precision": str(trainer.mixed_precision),
    }
    if isinstance(run.data, PretrainCorpusConfig):
        masking = run.data.masking
        settings["masking"] = (
            f"{masking.mode}, {masking.mlm_probability:.0%}, {'whole words' if masking.whole_word else 'word pieces'}"
        )
    lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in settings.items()]
    lines += ["", "## Evaluation", "", "| split | metric | value |", "|---|---|---|"]
    for split, scores in result.scores.items():
        lines += [f"| {split} | {metric} | {_fmt(value)} |" for metric, value in scores.items()]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'pipe = pipeline("{pipeline_tag}", model="path/to/this/folder")',
        _EXAMPLES[task.kind],
        "```",
        "",
    ]
    return "\n".join(lines)


def plot_curves(log_path: Path, image_path: Path) -> None:
    """Loss, learning rate and evaluation metrics against the optimizer step."""
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
        # Scores (accuracy, F1, correlations) share one axis; losses, perplexities and counts would squash it.
        values = [(m, v) for r in evals for m, v in r["eval"].get(split, {}).items()]
        metrics = sorted({m for m, v in values if isinstance(v, float)} - {m for m, v in values if not _is_score(v)})
        # Overall scores only: per-type and per-subset ones (PER_f1, strict_LOC_recall, ...) would bury them.
        metrics = [m for m in metrics if m.islower()]
        for metric in metrics:
            points = [(r["step"], r["eval"][split][metric]) for r in evals if metric in r["eval"].get(split, {})]
            axes[2].plot(*zip(*points, strict=True), marker="o", label=f"{split} {metric}")
    axes[2].set(title="evaluation", xlabel="step")
    for axis in (axes[0], axes[2]):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(image_path, dpi=100)
    plt.close(figure)


def _is_score(value: Any) -> bool:
    return isinstance(value, float) and -1.0 <= value <= 1.0


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _atomic_write(path: Path, text: str) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(text)
    os.replace(staging, path)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
