"""What a run builds before it trains, and `python -m bertkit.prepare` builds ahead of it: the task of the
settings, checked against the model, then the tokenizer and the task's data, both cached under cache_dir
(keyed by the settings and input files, so a later run with the same settings reads them back)."""

from __future__ import annotations

from pathlib import Path

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from bertkit import config, model, tokenizer
from bertkit.core.task import TaskData
from bertkit.tasks.base import CheckpointLabels, Task
from bertkit.tasks.registry import task_for


def checked_task(run_cfg: config.RunConfig) -> tuple[Task, PretrainedConfig]:
    """The run's task and its model's architecture, checked together; run_cfg.model gets the checkpoint's sizes.
    A checkpoint evaluated as it is (max_steps=0) gives the task its labels (they key the task's data cache)."""
    task = task_for(run_cfg.data)
    architecture = model.architecture(run_cfg.model)
    model.check_encoder(run_cfg.model, architecture, task.encoder_types)
    run_cfg.model = model.with_checkpoint_sizes(run_cfg.model, architecture)
    model.check_sequence_length(architecture, task.max_seq_length)
    if run_cfg.trainer.max_steps == 0 and run_cfg.model.name_or_path is not None:
        task.use_checkpoint_labels(CheckpointLabels.of(run_cfg.model.name_or_path, architecture))
    return task, architecture


def build_inputs(
    run_cfg: config.RunConfig, task: Task, architecture: PretrainedConfig
) -> tuple[PreTrainedTokenizerBase, TaskData]:
    """The tokenizer (loaded, or trained on the task's text) and the task's data, from the cache when built before."""
    cache_dir = Path(run_cfg.cache_dir).expanduser()
    tok = tokenizer.build(run_cfg.tokenizer, run_cfg.model, lambda: task.training_text(cache_dir), cache_dir)
    tokenizer.check_fits(run_cfg.model, run_cfg.tokenizer.name_or_path, tok, architecture)
    tokenizer.fit_inputs(tok, architecture)
    return tok, task.build(tok, cache_dir)
