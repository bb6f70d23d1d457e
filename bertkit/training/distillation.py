"""Knowledge distillation: the teacher (a model fine-tuned for the same task), what it must share with the student,
and its outputs, cached over the training set before training or computed alongside each batch.

The teacher runs in eval mode and is never updated, checkpointed or saved: the student's model/ is a plain
Hugging Face folder of the student alone."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from bertkit import fingerprints
from bertkit.core.batch import EPOCH, EXAMPLE_INDEX, Batch
from bertkit.core.errors import ModelError, missing_checkpoint_message
from bertkit.core.layers import missing_weights
from bertkit.core.seeding import fingerprint
from bertkit.core.task import Head, TaskData
from bertkit.settings import DistillConfig

log = logging.getLogger(__name__)

TEACHER_LOGITS = "teacher_logits"
"""The batch key of the cached teacher logits of a training batch (taken out before the student sees it)."""
_CACHE_VERSION = 1


class Teacher:
    """The teacher model, frozen in eval mode on the training device, and the distillation settings."""

    def __init__(self, cfg: DistillConfig, model: PreTrainedModel, accelerator: Accelerator) -> None:
        self.cfg, self.accelerator = cfg, accelerator
        self.model = model.eval().requires_grad_(False).to(accelerator.device)
        self.accepted = set(inspect.signature(self.model.forward).parameters)

    @torch.no_grad()
    def outputs(self, batch: Batch, hidden_states: bool = False) -> Any:
        """The teacher's outputs for a batch: the inputs its architecture takes (a DistilBERT teacher no token
        type ids), never the labels."""
        inputs = {key: value for key, value in batch.items() if key in self.accepted and key != "labels"}
        with self.accelerator.autocast():
            return self.model(**inputs, output_hidden_states=hidden_states)

    def hidden_pairs(self, student_layers: int) -> list[tuple[int, int]]:
        """(student, teacher) indices into the models' hidden states: the embeddings, then each student layer
        with the teacher layer it imitates."""
        imitated = imitated_layers(self.cfg, student_layers, self.model.config.num_hidden_layers)
        return [(0, 0), *((index + 1, teacher + 1) for index, teacher in enumerate(imitated))]


def imitated_layers(cfg: DistillConfig, student_layers: int, teacher_layers: int) -> list[int]:
    """For each student layer, the teacher layer (0-based) whose output it imitates: distill.hidden_layers, or
    the last layer of each of the teacher's layers cut into equal blocks, one per student layer (TinyBERT's
    mapping: the student's top layer, which its head reads, imitates the teacher's top)."""
    if cfg.hidden_layers is not None:
        return list(cfg.hidden_layers)
    return [round((index + 1) * teacher_layers / student_layers) - 1 for index in range(student_layers)]


def check_readable(cfg: DistillConfig) -> None:
    """Before any work: distill.teacher names a model that can be read."""
    if cfg.teacher is None:
        return
    try:
        AutoConfig.from_pretrained(cfg.teacher)
    except (OSError, ValueError) as error:
        raise ModelError(missing_checkpoint_message("distill.teacher", cfg.teacher, error)) from None


def load_teacher(
    cfg: DistillConfig,
    head: Head,
    student: PretrainedConfig,
    tokenizer: PreTrainedTokenizerBase,
    accelerator: Accelerator,
) -> Teacher | None:
    """The teacher of distill.teacher, checked against the student (labels, tokenizer, hidden sizes); None
    without one."""
    if cfg.teacher is None:
        return None
    if cfg.alpha == 1 and cfg.hidden_weight == 0:
        log.warning("distill.alpha=1: the loss is the labels' alone, so the teacher %s is not used", cfg.teacher)
        return None
    try:
        model, info = head.model_class.from_pretrained(cfg.teacher, dtype=torch.float32, output_loading_info=True)
    except (OSError, ValueError) as error:
        raise ModelError(missing_checkpoint_message("distill.teacher", cfg.teacher, error)) from None
    _check_labels(cfg.teacher, model.config, head)
    _check_tokenizer(cfg.teacher, tokenizer)
    _check_token_types(cfg.teacher, model.config, tokenizer)
    _check_trained(cfg.teacher, info)
    if cfg.hidden_weight > 0:
        _check_hidden(cfg, model.config, student)
    log.info("Distilling from %s (alpha %g, temperature %g)", cfg.teacher, cfg.alpha, cfg.temperature)
    return Teacher(cfg, model, accelerator)


def _check_trained(teacher: str, loading_info: dict[str, Any]) -> None:
    """A teacher whose head the checkpoint lacks (a base model) would teach from random weights."""
    missing = missing_weights(loading_info)
    missing += [key for key, *_ in loading_info.get("mismatched_keys", [])]
    if missing:
        raise ModelError(
            f"distill.teacher={teacher!r} has no trained weights for {', '.join(sorted(missing)[:3])}: the teacher "
            "must be a model fine-tuned for this task (the model/ of a bertkit run on the same data, say)"
        )


def _check_labels(teacher: str, config: PretrainedConfig, head: Head) -> None:
    """The teacher must predict the student's labels, in the same order."""
    wanted = head.config.get("id2label")
    if wanted is None:  # multiple choice: no label set
        return
    problem, theirs_problem = head.config.get("problem_type"), getattr(config, "problem_type", None)
    if problem and theirs_problem and problem != theirs_problem:
        raise ModelError(
            f"distill.teacher={teacher!r} was fine-tuned for {theirs_problem}, this task is {problem}: the teacher "
            "must be fine-tuned for the same task"
        )
    names = [str(wanted[index]) for index in sorted(wanted)]
    theirs = [str(config.id2label[index]) for index in sorted(config.id2label)]
    placeholders = all(name == f"LABEL_{index}" for index, name in enumerate(theirs))
    if len(theirs) != len(names) or (not placeholders and theirs != names):
        raise ModelError(
            f"distill.teacher={teacher!r} predicts {theirs}, but this task's labels are {names}: the teacher must "
            "be fine-tuned on the same labels, in the same order"
        )


def _check_token_types(teacher: str, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
    """A teacher that tells the two texts of a pair apart by token type ids needs a student whose inputs have them."""
    if (getattr(config, "type_vocab_size", 0) or 0) > 1 and "token_type_ids" not in tokenizer.model_input_names:
        raise ModelError(
            f"distill.teacher={teacher!r} reads token type ids (type_vocab_size={config.type_vocab_size}), which the "
            "student's inputs do not have (its architecture has no type embeddings): choose a teacher and a student "
            "that read the same inputs"
        )


def _check_tokenizer(teacher: str, tokenizer: PreTrainedTokenizerBase) -> None:
    """The teacher reads the student's token ids, so it must have the student's vocabulary."""
    try:
        theirs = AutoTokenizer.from_pretrained(teacher)
    except (OSError, ValueError) as error:
        raise ModelError(missing_checkpoint_message("distill.teacher", teacher, error, "tokenizer")) from None
    if theirs.get_vocab() != tokenizer.get_vocab():
        raise ModelError(
            f"distill.teacher={teacher!r} has another vocabulary than the student's tokenizer "
            f"({len(theirs)} vs {len(tokenizer)} tokens): distillation feeds both the same token ids"
        )


def _check_hidden(cfg: DistillConfig, teacher: PretrainedConfig, student: PretrainedConfig) -> None:
    imitated = imitated_layers(cfg, student.num_hidden_layers, teacher.num_hidden_layers)
    if teacher.hidden_size != student.hidden_size:
        raise ModelError(
            f"distill.hidden_weight: the teacher's hidden size is {teacher.hidden_size}, the student's "
            f"{student.hidden_size}; hidden states can only be compared at the same size (set distill.hidden_weight=0)"
        )
    if len(imitated) != student.num_hidden_layers or max(imitated) >= teacher.num_hidden_layers:
        raise ModelError(
            f"distill.hidden_layers={list(imitated)} must name one of the teacher's {teacher.num_hidden_layers} "
            f"layers for each of the student's {student.num_hidden_layers}"
        )


def hidden_state_loss(student: tuple, teacher: tuple, pairs: list[tuple[int, int]], mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error between paired hidden states: per example over its real (unpadded) positions, then
    averaged over examples and pairs, so that its scale depends on neither the batch nor the processes."""
    keep = mask.reshape(-1, mask.shape[-1]).float()  # multiple choice: a row per choice, as the hidden states
    errors = []
    for s, t in pairs:
        per_position = (student[s].float() - teacher[t].float()).pow(2).mean(-1)
        errors.append(((per_position * keep).sum(1) / keep.sum(1).clamp_min(1)).mean())
    return torch.stack(errors).mean()


class CachedLogits:
    """The teacher's logits of every training example, in order: one row each (classes, choices), or one per real
    token (token classification), stored end to end with each example's offset."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray, per_token: bool) -> None:
        self.values, self.offsets, self.per_token = torch.from_numpy(values), offsets, per_token

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def batch(self, indices: list[int], length: int) -> torch.Tensor:
        """The logits of these examples; per token, padded with zeros to the batch's length."""
        if not self.per_token:
            return self.values[indices]
        out = torch.zeros(len(indices), length, self.values.shape[-1])
        for row, index in enumerate(indices):
            tokens = self.values[self.offsets[index] : self.offsets[index + 1]]
            out[row, : len(tokens)] = tokens
        return out


class WithTeacherLogits:
    """A training collator that adds each example's cached teacher logits to its batch."""

    def __init__(self, collate: Any, logits: CachedLogits) -> None:
        self.collate, self.logits = collate, logits

    def __call__(self, examples: list[dict[str, Any]]) -> Batch:
        indices = [example[EXAMPLE_INDEX] for example in examples]
        batch = self.collate(examples)
        batch[TEACHER_LOGITS] = self.logits.batch(indices, batch["input_ids"].shape[1])
        return batch


def attach_cached_logits(teacher: Teacher, data: TaskData, cache_dir: Path, batch_size: int) -> None:
    """With distill.cache_teacher (and no hidden-state loss, for which the teacher runs anyway): every training
    batch carries its examples' cached teacher logits."""
    if teacher.cfg.cache_teacher and teacher.cfg.hidden_weight == 0:
        if not isinstance(data.train, datasets.Dataset):
            raise ModelError("distill.cache_teacher=true caches a logit per training example: a stream has no fixed "
                             "examples (data.streaming); set distill.cache_teacher=false")  # fmt: skip
        logits = cached_logits(teacher, data.train, data.collate_train, cache_dir, batch_size)
        data.collate_train = WithTeacherLogits(data.collate_train, logits)


def cached_logits(
    teacher: Teacher, train: datasets.Dataset, collate: Callable, cache_dir: Path, batch_size: int
) -> CachedLogits:
    """The teacher's logits for every training example: read from the cache (keyed by the teacher's files and
    revision, the precision it runs in and the training set's contents), or computed by the main process and
    written there first."""
    assert teacher.cfg.teacher is not None
    revision = getattr(teacher.model.config, "_commit_hash", None)  # a Hub teacher's files are its revision
    precision = str(teacher.accelerator.mixed_precision)
    key = fingerprint(
        _CACHE_VERSION, fingerprints.of_location(teacher.cfg.teacher), revision, precision, _contents(train)
    )
    path = cache_dir / "teacher_logits" / f"{key}.npz"
    with teacher.accelerator.main_process_first():
        if not path.is_file():
            values, offsets, per_token = _compute(teacher, train, collate, batch_size)
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
            with open(staging, "wb") as handle:
                np.savez(handle, values=values, offsets=offsets, per_token=per_token)
            os.replace(staging, path)  # whole or not at all
            log.info("Cached the teacher's logits for %d training examples in %s", len(offsets) - 1, path)
    with np.load(path) as stored:
        return CachedLogits(stored["values"], stored["offsets"], bool(stored["per_token"]))


def _contents(train: datasets.Dataset) -> str:
    digest = hashlib.sha256()
    for rows in train.iter(batch_size=8192):
        digest.update(json.dumps(rows, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _compute(
    teacher: Teacher, train: datasets.Dataset, collate: Callable, batch_size: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Every training example's logits end to end, their offsets, and whether there is one row per token."""
    device, per_token = teacher.accelerator.device, False
    rows: list[torch.Tensor] = []
    for start in range(0, len(train), batch_size):
        stop = min(start + batch_size, len(train))
        examples = [{**train[index], EXAMPLE_INDEX: index, EPOCH: 0} for index in range(start, stop)]
        batch = {key: value.to(device) for key, value in collate(examples).items()}
        logits = teacher.outputs(batch).logits.float().cpu()
        per_token = logits.dim() == 3
        if per_token:  # batches are padded on the right: each example's real tokens come first
            lengths = batch["attention_mask"].sum(1).tolist()
            rows.extend(logits[row, :length] for row, length in enumerate(lengths))
        else:
            rows.extend(logits.unsqueeze(1).unbind(0))
    offsets = np.cumsum([0, *(len(row) for row in rows)])
    return torch.cat(rows).numpy(), offsets, per_token
