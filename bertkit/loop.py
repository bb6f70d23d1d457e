"""The task-agnostic training loop on Accelerate: prepare, accumulate, clip, step, log, evaluate, checkpoint.

It knows no task: the data bundle supplies datasets, collators and what to gather at evaluation, and the
caller supplies the scorer. Checkpoints are Accelerate states written under a temporary name and renamed
when complete, so a crash mid-save leaves the previous checkpoint as the newest.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bertkit import optim
from bertkit.config import TrainerConfig
from bertkit.data.bundle import DataBundle
from bertkit.data.masking import IGNORE_INDEX
from bertkit.errors import BertkitError

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class TrainingError(BertkitError):
    """Training cannot go on (e.g. the loss is not finite); the message names the step."""


def make_accelerator(cfg: TrainerConfig, seed: int) -> Accelerator:
    """The Accelerator for this run (device topology comes from `accelerate config`/launch, not Hydra)."""
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=str(cfg.mixed_precision),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        project_config=ProjectConfiguration(automatic_checkpoint_naming=False),
        dynamo_backend="inductor" if cfg.torch_compile else "no",
        step_scheduler_with_optimizer=False,
    )
    set_seed(seed)
    return accelerator


@dataclass
class LoopState:
    """Where training stands; saved in every checkpoint so a restart continues from the same batch."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens: int = 0
    samples: int = 0
    train_seconds: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass
class TrainResult:
    """What training produced: the unwrapped model, final scores per evaluation split, and timings."""

    model: torch.nn.Module
    scores: dict[str, dict[str, float]]
    history: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """The final model's gathered outputs on every evaluation and prediction split (main process)."""


def train(
    accelerator: Accelerator,
    cfg: TrainerConfig,
    model: torch.nn.Module,
    bundle: DataBundle,
    score: Callable[[dict[str, np.ndarray]], dict[str, float]],
    run_dir: Path,
) -> TrainResult:
    """Train until max_steps, num_epochs or max_minutes, evaluating and checkpointing on the way."""
    train_loader = DataLoader(
        bundle.train,
        batch_size=cfg.per_device_batch_size,
        shuffle=True,
        collate_fn=bundle.collate_train,
        num_workers=cfg.num_workers,
        pin_memory=accelerator.device.type == "cuda",
        drop_last=True,  # equal shards on every process; a ragged last batch would skew the loss scale
    )
    eval_loaders = {
        name: DataLoader(dataset, batch_size=cfg.eval_batch_size, collate_fn=bundle.collate_eval)
        for name, dataset in (bundle.evaluation | bundle.prediction).items()
    }
    optimizer = optim.build_optimizer(model, cfg, accelerator.device)
    prepared = accelerator.prepare(model, optimizer, train_loader, *eval_loaders.values())
    model, optimizer, train_loader = prepared[:3]
    eval_loaders = dict(zip(eval_loaders, prepared[3:], strict=True))
    predict_loaders = {name: eval_loaders.pop(name) for name in bundle.prediction}

    steps_per_epoch = len(train_loader) // cfg.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise TrainingError(
            f"the training set ({len(bundle.train)} examples) is smaller than one optimizer step of "
            f"trainer.per_device_batch_size={cfg.per_device_batch_size} x "
            f"trainer.gradient_accumulation_steps={cfg.gradient_accumulation_steps} x "
            f"{accelerator.num_processes} processes"
        )
    total_steps = cfg.max_steps or steps_per_epoch * cfg.num_epochs
    scheduler = optim.build_scheduler(optimizer, cfg, total_steps)
    state = LoopState()
    stateful = [scheduler, state, bundle.collate_train]
    accelerator.register_for_checkpointing(*[obj for obj in stateful if hasattr(obj, "state_dict")])
    checkpoints = run_dir / CHECKPOINTS
    resumed_from = _resume(accelerator, checkpoints) if cfg.resume else None
    if resumed_from:
        log.info("Resumed from %s (step %d, epoch %d)", resumed_from, state.step, state.epoch)

    log_file = _LogFile(run_dir / "log.jsonl", accelerator.is_main_process, append=resumed_from is not None)
    history: list[dict[str, Any]] = []
    progress = tqdm(
        total=total_steps,
        initial=state.step,
        disable=not (cfg.progress_bar and accelerator.is_main_process),
        desc="Training",
        dynamic_ncols=True,
    )
    clock = _Clock(state.train_seconds)
    window = _Window(clock)
    budget = None if cfg.max_minutes is None else cfg.max_minutes * 60

    def evaluate_during_training() -> None:
        with clock.paused():
            history.append(_evaluate_all(accelerator, model, eval_loaders, bundle, score, state)[0])
        log_file.write(history[-1])
        model.train()

    model.train()
    while state.step < total_steps and not _out_of_time(accelerator, budget, clock):
        train_loader.set_epoch(state.epoch)
        batches = accelerator.skip_first_batches(train_loader, state.batch_in_epoch)
        for batch in batches:
            state.batch_in_epoch += 1
            with accelerator.accumulate(model):
                output = model(**batch)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    window.grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            window.add(output, bundle.count_tokens(batch), len(batch["input_ids"]))
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state.step += 1
            progress.update(1)

            if state.step % cfg.log_every == 0 or state.step == total_steps:
                record = window.flush(accelerator, state, scheduler.get_last_lr()[0])
                log_file.write(record)
                progress.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_second']:.0f}")
            if cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < total_steps:
                evaluate_during_training()
            if cfg.save_every and state.step % cfg.save_every == 0:
                state.train_seconds = clock.elapsed()
                with clock.paused():
                    save_checkpoint(accelerator, checkpoints, state.step, cfg.keep_last)
            if state.step >= total_steps or _out_of_time(accelerator, budget, clock):
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
            if cfg.eval_every_epoch and state.step < total_steps:
                evaluate_during_training()
    progress.close()
    if window.micro_batches:  # stopped by the time budget between two log lines
        log_file.write(window.flush(accelerator, state, scheduler.get_last_lr()[0]))
    state.train_seconds = clock.elapsed()

    eval_started = time.perf_counter()
    final, outputs = _evaluate_all(accelerator, model, eval_loaders, bundle, score, state)
    eval_seconds = time.perf_counter() - eval_started
    for name, loader in predict_loaders.items():
        outputs[name] = evaluate(accelerator, model, loader, bundle)
    log_file.write(final)
    history.append(final)
    if cfg.save_every and not (checkpoints / f"step_{state.step}").exists():
        save_checkpoint(accelerator, checkpoints, state.step, cfg.keep_last)
    throughput = {
        "steps": state.step,
        "train_seconds": state.train_seconds,
        "tokens_per_second": state.tokens / state.train_seconds if state.train_seconds else 0.0,
        "samples_per_second": state.samples / state.train_seconds if state.train_seconds else 0.0,
        "final_eval_seconds": eval_seconds,
        "processes": accelerator.num_processes,
    }
    return TrainResult(
        model=accelerator.unwrap_model(model),
        scores=final["eval"],
        history=history,
        throughput=throughput,
        outputs=outputs if accelerator.is_main_process else {},
    )


# ------------------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def evaluate(
    accelerator: Accelerator, model: torch.nn.Module, loader: DataLoader, bundle: DataBundle
) -> dict[str, np.ndarray]:
    """Run the model over one split and gather each example's outputs exactly once across processes."""
    model.eval()
    collected: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        outputs = bundle.eval_outputs(batch, model(**batch))
        for name, tensor in outputs.items():
            if tensor.dim() >= 2:  # other processes' batches may be padded to another length
                tensor = accelerator.pad_across_processes(tensor, dim=1, pad_index=IGNORE_INDEX)
            gathered = accelerator.gather_for_metrics(tensor)
            collected.setdefault(name, []).append(gathered.cpu().numpy())
    return {name: _concatenate_padded(parts) for name, parts in collected.items()}


def _evaluate_all(
    accelerator, model, loaders, bundle, score, state: LoopState
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Scores of every evaluation split as a log record, and the gathered outputs they came from."""
    scores, outputs = {}, {}
    for name, loader in loaders.items():
        outputs[name] = evaluate(accelerator, model, loader, bundle)
        # Scored once, on the main process: evaluate's cache files are not meant for concurrent writers.
        scores[name] = score(outputs[name]) if accelerator.is_main_process else {}
    if accelerator.is_main_process:
        summary = ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for split in scores.values()
            for k, v in split.items()
        )
        log.info("step %d eval: %s", state.step, summary)
    return {"step": state.step, "epoch": state.epoch, "eval": scores}, outputs


def _concatenate_padded(parts: list[np.ndarray]) -> np.ndarray:
    if parts[0].ndim < 2:
        return np.concatenate(parts)
    width = max(part.shape[1] for part in parts)
    padded = [
        np.pad(p, [(0, 0), (0, width - p.shape[1])] + [(0, 0)] * (p.ndim - 2), constant_values=IGNORE_INDEX)
        for p in parts
    ]
    return np.concatenate(padded)


# -------------------------------------------------------------------------------------------- logging


class _Clock:
    """Training time, with evaluation and checkpoint writing left out."""

    def __init__(self, already: float = 0.0) -> None:
        self.offset = already
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return self.offset + time.perf_counter() - self.started

    @contextmanager
    def paused(self) -> Iterator[None]:
        stopped = self.elapsed()
        try:
            yield
        finally:
            self.offset, self.started = stopped, time.perf_counter()


class _Window:
    """Losses, tokens and samples since the last log line; reduced across processes only when logged."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.losses: dict[str, torch.Tensor] = {}
        self.micro_batches = 0
        self.tokens = 0
        self.samples = 0
        self.grad_norm: torch.Tensor | float | None = None
        self.opened = clock.elapsed()

    def add(self, output: Any, tokens: int, samples: int) -> None:
        for name, value in output.items():
            if name.endswith("loss") and isinstance(value, torch.Tensor) and value.dim() == 0:
                self.losses[name] = self.losses.get(name, 0.0) + value.detach().float()
        self.micro_batches += 1
        self.tokens += tokens
        self.samples += samples

    def flush(self, accelerator: Accelerator, state: LoopState, lr: float) -> dict[str, Any]:
        names = sorted(self.losses)
        local = torch.stack([self.losses[n] for n in names]) / max(1, self.micro_batches)
        counts = torch.tensor([self.tokens, self.samples], device=accelerator.device)
        losses = accelerator.reduce(local.to(accelerator.device), "mean").tolist()
        tokens, samples = (int(x) for x in accelerator.reduce(counts, "sum").tolist())
        now = self.clock.elapsed()
        seconds = max(now - self.opened, 1e-9)
        state.tokens += tokens
        state.samples += samples
        record: dict[str, Any] = {"step": state.step, "epoch": state.epoch}
        record.update(zip(names, losses, strict=True))
        if not math.isfinite(record["loss"]):
            raise TrainingError(
                f"the loss is {record['loss']} at step {state.step}; lower trainer.learning_rate or check "
                "the data (the last good checkpoint is kept)"
            )
        grad_norm = self.grad_norm
        record.update(
            lr=lr,
            grad_norm=float(grad_norm) if grad_norm is not None else None,
            tokens_per_second=tokens / seconds,
            samples_per_second=samples / seconds,
            elapsed_seconds=now,
        )
        self.__init__(self.clock)
        return record


class _LogFile:
    """log.jsonl: one JSON object per logging step or evaluation, written by the main process only."""

    def __init__(self, path: Path, enabled: bool, append: bool) -> None:
        self.path = path
        self.enabled = enabled
        if enabled and not append:
            path.write_text("")

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")


def _out_of_time(accelerator: Accelerator, budget_seconds: float | None, clock: _Clock) -> bool:
    if budget_seconds is None:
        return False
    if accelerator.is_main_process and clock.elapsed() >= budget_seconds:
        accelerator.set_trigger()  # every process must stop at the same step
    return accelerator.check_trigger()


# ---------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int, keep_last: int) -> Path:
    """Write a resumable state to step_N.tmp, then rename it; older checkpoints beyond keep_last go."""
    final = folder / f"step_{step}"
    staging = folder / f"step_{step}.tmp"
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        for old in complete_checkpoints(folder)[:-keep_last]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def complete_checkpoints(folder: Path) -> list[Path]:
    """Finished checkpoints, oldest first; step_N.tmp folders are partial writes and never count."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found)]


def _resume(accelerator: Accelerator, folder: Path) -> Path | None:
    partial = sorted(folder.glob("step_*.tmp")) if folder.is_dir() else []
    for path in partial:
        log.warning("Ignoring %s: a checkpoint whose writing did not finish", path)
    found = complete_checkpoints(folder)
    if not found:
        return None
    accelerator.load_state(str(found[-1]))
    return found[-1]
