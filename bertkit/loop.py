"""The task-agnostic training loop on Accelerate: prepare, accumulate, clip, step, log, evaluate, checkpoint.

It knows no task: the data bundle supplies datasets, collators and what to gather at evaluation, and the
caller supplies the scorer.

Every source of training randomness is keyed by position, not by history: the data order by (seed, epoch)
(Accelerate's seedable sampler), the data recipe's random choices such as MLM masks by (seed, epoch,
example index) (training examples reach the collator with their index), and dropout by (seed, epoch,
micro-batch, process) (the generator is re-seeded before each forward pass). So a run restarted from a
checkpoint replays exactly what the uninterrupted run did, whatever the data loader prefetched and
however many worker processes it used.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DataLoaderConfiguration, DistributedType, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bertkit import checkpoint, optim
from bertkit.batching import LengthGroupedSampler, example_lengths
from bertkit.config import MixedPrecision, NonFiniteLoss, ResumeMode, TrainerConfig
from bertkit.data.bundle import EPOCH, EXAMPLE_INDEX, DataBundle
from bertkit.data.caching import stable_seed
from bertkit.data.masking import IGNORE_INDEX
from bertkit.errors import BertkitError, ConfigError

log = logging.getLogger(__name__)
OUT_OF_TIME = "out of time"


class TrainingError(BertkitError):
    """Training cannot go on (e.g. the loss is not finite); the message names the step."""


class Interrupted(BertkitError):
    """SIGINT or SIGTERM stopped training; a checkpoint of the last step was saved."""

    def __init__(self, signum: int, step: int, saved: Path) -> None:
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at step {step}; saved {saved}; run the same command to resume")


def make_accelerator(cfg: TrainerConfig, seed: int) -> Accelerator:
    """The Accelerator for this run (device topology comes from `accelerate config`/launch, not Hydra)."""
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=str(cfg.mixed_precision),
        # non_blocking: batches from pinned memory reach the GPU without the host waiting for the device.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed, non_blocking=True),
        project_config=ProjectConfiguration(automatic_checkpoint_naming=False),
        dynamo_backend="inductor" if cfg.torch_compile else "no",
        step_scheduler_with_optimizer=False,
    )
    set_seed(seed)
    check_process_group(accelerator)
    return accelerator


def release_accelerator() -> None:
    """Forget this run's Accelerator settings but keep the process group.

    A Hydra sweep (`-m`) runs its jobs one after another in the same processes: each job builds its own
    Accelerator (its own mixed precision, accumulation), on the group the first one joined, which lives
    until the process exits. (Accelerate's end_training would destroy it, and the next job could not train.)
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    _destroy_process_group_at_exit()


@functools.cache
def _destroy_process_group_at_exit() -> None:
    def destroy() -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    atexit.register(destroy)


def check_process_group(accelerator: Accelerator) -> None:
    """Refuse processes that were launched together but do not train together.

    Two traps of CPU-only machines: `accelerate launch --num_processes 2` without ACCELERATE_USE_CPU=true
    starts two processes that each train alone, and `accelerate launch --cpu --num_processes 2` starts one.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    asked = _processes_asked_of_launcher()
    if launched != accelerator.num_processes or (asked or 1) > accelerator.num_processes:
        count = max(launched, asked or 1)
        raise ConfigError(
            f"{count} processes were asked for, but they do not form one training group (this process sees "
            f"{accelerator.num_processes}); on CPUs launch with `python -m bertkit.launch --cpu --num_processes "
            f"{count} ...` or `make ... PROCESSES={count}` (gloo), or set ACCELERATE_USE_CPU=true with --multi_gpu"
        )


def _processes_asked_of_launcher() -> int | None:
    """--num_processes of the `accelerate launch` that started this process, read from its command line
    (Linux /proc); None when the parent is no accelerate launcher or cannot be read."""
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    if not any(part.endswith(("accelerate", "accelerate.commands.launch", "bertkit.launch")) for part in argv[:3]):
        return None
    options: dict[str, str] = {}
    for i, part in enumerate(argv):
        if part.endswith(".py"):  # the script; what follows are its own arguments
            break
        if part.startswith("--") and "=" in part:
            options[part.split("=", 1)[0]] = part.split("=", 1)[1]
        elif part.startswith("--") and i + 1 < len(argv):
            options[part] = argv[i + 1]
    if options.get("--num_processes", "").isdigit():
        return int(options["--num_processes"])
    if "--config_file" in options:
        try:
            launch_config = yaml.safe_load(Path(options["--config_file"]).read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        return launch_config.get("num_processes")
    return None


@dataclass
class LoopState:
    """Where training stands; saved in every checkpoint (as JSON) so a restart continues from the same batch."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    """Micro-batches of the current epoch already trained on."""
    tokens: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    """Evaluations during training (eval_every, eval_every_epoch): the final one is timed on its own."""
    skipped_steps: int = 0
    """Optimizer steps whose update was dropped because the gradients were not finite."""


@dataclass
class TrainResult:
    """What training produced: the model, final scores per evaluation split, and timings."""

    model: torch.nn.Module
    """The unwrapped model."""
    state_dict: dict[str, torch.Tensor] | None
    """Its full weights, gathered across processes (FSDP and DeepSpeed shard them); None off the main process."""
    scores: dict[str, dict[str, float]]
    history: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """The final model's gathered outputs on every evaluation and prediction split (main process)."""


class KeyedDataset(Dataset):
    """A training set whose examples carry their index and the epoch (Accelerate sets it each epoch)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], EXAMPLE_INDEX: index, EPOCH: self.epoch}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def train(
    accelerator: Accelerator,
    cfg: TrainerConfig,
    model: torch.nn.Module,
    bundle: DataBundle,
    score: Callable[[dict[str, np.ndarray]], dict[str, float]],
    run_dir: Path,
    seed: int,
) -> TrainResult:
    """Train until max_steps, num_epochs or max_minutes, evaluating and checkpointing on the way."""
    keyed_train = KeyedDataset(bundle.train)
    grouped = None
    if cfg.group_by_length:
        grouped = LengthGroupedSampler(example_lengths(bundle.train), cfg.per_device_batch_size, seed)
    train_loader = DataLoader(
        keyed_train,
        batch_size=cfg.per_device_batch_size,
        shuffle=grouped is None,
        sampler=grouped,
        collate_fn=bundle.collate_train,
        num_workers=cfg.num_workers,
        pin_memory=accelerator.device.type == "cuda",
        drop_last=True,  # equal shards on every process; a ragged last batch would skew the loss scale
    )
    eval_loaders = {
        name: DataLoader(dataset, batch_size=cfg.eval_batch_size, collate_fn=bundle.collate_eval)
        for name, dataset in (bundle.evaluation | bundle.final_evaluation | bundle.prediction).items()
    }
    optimizer = optim.build_optimizer(model, cfg, accelerator.device)
    prepared = accelerator.prepare(model, optimizer, train_loader, *eval_loaders.values())
    model, optimizer, train_loader = prepared[:3]
    eval_loaders = dict(zip(eval_loaders, prepared[3:], strict=True))
    predict_loaders = {name: eval_loaders.pop(name) for name in bundle.prediction}
    final_loaders = {name: eval_loaders.pop(name) for name in bundle.final_evaluation}

    # accumulate() also steps at the end of every epoch, after fewer micro-batches if they do not divide.
    steps_per_epoch = math.ceil(len(train_loader) / cfg.gradient_accumulation_steps)
    total_steps = cfg.max_steps if cfg.max_steps is not None else steps_per_epoch * cfg.num_epochs
    if steps_per_epoch == 0 and total_steps > 0:
        raise TrainingError(
            f"the training set ({len(bundle.train)} examples) is smaller than one batch of "
            f"trainer.per_device_batch_size={cfg.per_device_batch_size} x {accelerator.num_processes} processes"
        )
    # Prepared (not registered) so that Accelerate saves it as its own scheduler.bin, read back unpickled.
    scheduler = accelerator.prepare(optim.build_scheduler(optimizer, cfg, total_steps))
    state = LoopState()
    checkpoints = run_dir / checkpoint.CHECKPOINTS
    resumed = checkpoint.resume(accelerator, checkpoints) if cfg.resume != ResumeMode.never else None
    if resumed:
        state = LoopState(**resumed[1])
        log.info("Resumed from %s (step %d, epoch %d)", resumed[0], state.step, state.epoch)

    log_file = _LogFile(run_dir / "log.jsonl", accelerator.is_main_process, append=resumed is not None)
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
    stop = _StopConditions(accelerator, cfg, clock)
    # With fp16 the gradient scaler skips overflowing steps itself; only other runs treat them as errors.
    check_finite = cfg.mixed_precision != MixedPrecision.fp16
    nonfinite = _FirstNonFiniteStep(accelerator.device)

    def evaluate_during_training() -> None:
        nonfinite.raise_if_seen()
        with clock.paused():
            started = time.perf_counter()
            history.append(_evaluate_all(accelerator, model, eval_loaders, bundle, score, state)[0])
            state.eval_seconds += time.perf_counter() - started
        log_file.write(history[-1])
        model.train()

    def save() -> Path:
        nonfinite.raise_if_seen()  # never a checkpoint of weights updated with non-finite gradients
        state.train_seconds = clock.elapsed()
        with clock.paused():
            return checkpoint.save(accelerator, checkpoints, state.step, cfg.keep_last, asdict(state))

    model.train()
    with stop.signals_caught():
        while state.step < total_steps:
            train_loader.set_epoch(state.epoch)
            # Accelerate passes the epoch on to the sampler but, when several processes shard it, not to the
            # dataset: MLM masks keyed by epoch would repeat every epoch.
            keyed_train.set_epoch(state.epoch)
            for batch in accelerator.skip_first_batches(train_loader, state.batch_in_epoch):
                state.batch_in_epoch += 1
                # Dropout draws from the global generator: keyed by position, it replays on resume.
                torch.manual_seed(stable_seed(seed, state.epoch, state.batch_in_epoch, accelerator.process_index))
                with accelerator.accumulate(model):
                    output = model(**batch)
                    accelerator.backward(output.loss)
                    window.add(output, bundle.count_tokens(batch), len(batch["input_ids"]))
                    update = True
                    if accelerator.sync_gradients:
                        # The norm is reduced over all processes, so every process takes the same branch.
                        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
                        window.grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
                        # A tensor, or under DeepSpeed a float (None before its first step).
                        norm = window.grad_norm
                        if check_finite and norm is not None:
                            if cfg.on_nonfinite_loss == NonFiniteLoss.stop and torch.is_tensor(norm):
                                nonfinite.note(norm, state.step + 1)
                            elif not math.isfinite(norm):  # skipping this update needs the norm now
                                update = _nonfinite(cfg, state, window)
                    if update:
                        optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                if not accelerator.sync_gradients:
                    continue
                window.commit()
                scheduler.step()
                state.step += 1
                progress.update(1)

                if state.step % cfg.log_every == 0 or state.step == total_steps:
                    nonfinite.raise_if_seen()
                    record = window.flush(accelerator, state, scheduler.get_last_lr()[0])
                    log_file.write(record)
                    if "loss" in record:  # absent when every step since the last line was skipped
                        progress.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_second']:.0f}")
                if cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < total_steps:
                    evaluate_during_training()
                if cfg.save_every and state.step % cfg.save_every == 0:
                    save()
                reason = stop.check()
                if reason == OUT_OF_TIME:
                    total_steps = state.step  # evaluate and save as if the budget ended here
                elif reason is not None:  # a signal: save where we are and leave
                    progress.close()
                    if window.micro_batches:
                        log_file.write(window.flush(accelerator, state, scheduler.get_last_lr()[0]))
                    saved = checkpoints / f"step_{state.step}"
                    if not (cfg.save_every and state.step % cfg.save_every == 0):
                        saved = save()
                    raise Interrupted(reason, state.step, saved)
                if state.step >= total_steps:
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
                if cfg.eval_every_epoch and state.step < total_steps:
                    evaluate_during_training()
    progress.close()
    nonfinite.raise_if_seen()
    if window.micro_batches:  # stopped by the time budget between two log lines
        log_file.write(window.flush(accelerator, state, scheduler.get_last_lr()[0]))
    state.train_seconds = clock.elapsed()

    eval_started = time.perf_counter()
    final, outputs = _evaluate_all(accelerator, model, eval_loaders | final_loaders, bundle, score, state)
    eval_seconds = time.perf_counter() - eval_started
    for name, loader in predict_loaders.items():
        outputs[name] = evaluate(accelerator, model, loader, bundle)
    log_file.write(final)
    history.append(final)
    if cfg.save_every and state.step > 0 and not (checkpoints / f"step_{state.step}").exists():
        save()
    throughput: dict[str, Any] = {
        "steps": state.step,
        "train_seconds": state.train_seconds,
        "tokens_per_second": state.tokens / state.train_seconds if state.train_seconds else 0.0,
        "samples_per_second": state.samples / state.train_seconds if state.train_seconds else 0.0,
        "eval_seconds_during_training": state.eval_seconds,
        "final_eval_seconds": eval_seconds,
        "processes": accelerator.num_processes,
        "skipped_nonfinite_steps": state.skipped_steps,
    }
    if accelerator.distributed_type in (DistributedType.MULTI_GPU, DistributedType.MULTI_CPU):
        throughput["weights_identical_across_processes"] = weights_agree(accelerator, model)
    state_dict = accelerator.get_state_dict(model)  # a collective under FSDP/DeepSpeed: every process calls it
    return TrainResult(
        model=accelerator.unwrap_model(model),
        state_dict=state_dict if accelerator.is_main_process else None,
        scores=final["eval"],
        history=history,
        throughput=throughput,
        outputs=outputs if accelerator.is_main_process else {},
    )


def _nonfinite(cfg: TrainerConfig, state: LoopState, window: _Window) -> bool:
    """Stop (the default) or skip an update whose gradients hold NaN or infinity; False: no update."""
    if cfg.on_nonfinite_loss == NonFiniteLoss.stop:
        raise _nonfinite_error(state.step + 1)
    window.drop_pending()
    state.skipped_steps += 1
    log.warning("step %d: the gradients are not finite; this update is skipped", state.step + 1)
    return False


def _nonfinite_error(step: int) -> TrainingError:
    return TrainingError(
        f"the loss or its gradients are not finite at step {step}; lower trainer.learning_rate or check the "
        "data (the last good checkpoint is kept), or set trainer.on_nonfinite_loss=skip to drop such updates"
    )


class _FirstNonFiniteStep:
    """The first step whose gradient norm was not finite, kept on the device.

    Reading the norm back every step would make the host wait for the device at every step. When a non-finite
    norm stops the run anyway (on_nonfinite_loss=stop), it is read where the host waits for the device
    regardless: at the next log line, evaluation, checkpoint or the end of training. The steps in between are
    lost with the run, and none of them reaches a checkpoint. (Skipping an update has to know now.)"""

    def __init__(self, device: torch.device) -> None:
        self.step = torch.zeros((), dtype=torch.long, device=device)

    def note(self, grad_norm: torch.Tensor, step: int) -> None:
        first = (self.step == 0) & ~torch.isfinite(grad_norm)
        self.step = torch.where(first, step, self.step)

    def raise_if_seen(self) -> None:
        if step := int(self.step):
            raise _nonfinite_error(step)


def weights_agree(accelerator: Accelerator, model: torch.nn.Module) -> bool:
    """Whether every process ended with the very same weights (data parallelism must keep them equal)."""
    digest = hashlib.sha256()
    for parameter in accelerator.unwrap_model(model).parameters():
        digest.update(parameter.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    fingerprint = torch.tensor([int.from_bytes(digest.digest()[:7], "little")], device=accelerator.device)
    fingerprints = accelerator.gather(fingerprint).tolist()
    agree = len(set(fingerprints)) == 1
    if not agree and accelerator.is_main_process:
        log.error("The processes ended with different weights (fingerprints %s)", fingerprints)
    return agree


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
        scores[name] = score(bundle.score_inputs(name, outputs[name])) if accelerator.is_main_process else {}
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


# ------------------------------------------------------------------------------------ stop conditions


class _StopConditions:
    """The time budget and SIGINT/SIGTERM, agreed on by all processes so that they stop at the same step."""

    def __init__(self, accelerator: Accelerator, cfg: TrainerConfig, clock: _Clock) -> None:
        self.accelerator = accelerator
        self.budget = None if cfg.max_minutes is None else cfg.max_minutes * 60
        self.clock = clock
        self.signal: int | None = None

    @contextmanager
    def signals_caught(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # handlers live in the main thread only
            yield
            return
        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        for signum in previous:
            signal.signal(signum, self._caught)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _caught(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # asked twice: stop now, without saving
            raise KeyboardInterrupt
        self.signal = signum
        log.warning("%s received: saving a checkpoint after this step, then stopping", signal.Signals(signum).name)

    def check(self) -> int | str | None:
        """A signal number, OUT_OF_TIME, or None to go on (a collective call: every process makes it)."""
        # 0: go on; 1: out of time; 1000 + signal number: stopped. The largest request of any process wins.
        local = 0
        if self.signal is not None:
            local = 1000 + self.signal
        elif self.budget is not None and self.clock.elapsed() >= self.budget:
            local = 1
        flag = local
        if self.accelerator.num_processes > 1:  # alone, there is no one to agree with (and no device to wait for)
            flag = int(self.accelerator.reduce(torch.tensor([local], device=self.accelerator.device), "max").item())
        if flag == 0:
            return None
        return OUT_OF_TIME if flag == 1 else flag - 1000


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
    """Losses, tokens and samples since the last log line; reduced across processes only when logged.

    Micro-batches wait in `pending` until their optimizer step is taken (commit) or dropped."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.losses: dict[str, torch.Tensor] = {}
        self.pending: list[tuple[dict[str, torch.Tensor], torch.Tensor | int, int]] = []
        self.micro_batches = 0
        self.tokens: torch.Tensor | int = 0  # summed on the device, read back only when logged
        self.samples = 0
        self.grad_norm: torch.Tensor | float | None = None
        self.opened = clock.elapsed()

    def add(self, output: Any, tokens: torch.Tensor | int, samples: int) -> None:
        losses = {
            name: value.detach().float()
            for name, value in output.items()
            if name.endswith("loss") and isinstance(value, torch.Tensor) and value.dim() == 0
        }
        self.pending.append((losses, tokens, samples))

    def commit(self) -> None:
        for losses, tokens, samples in self.pending:
            for name, value in losses.items():
                self.losses[name] = self.losses.get(name, 0.0) + value
            self.micro_batches += 1
            self.tokens += tokens
            self.samples += samples
        self.pending = []

    def drop_pending(self) -> None:
        self.pending = []

    def flush(self, accelerator: Accelerator, state: LoopState, lr: float) -> dict[str, Any]:
        names = sorted(self.losses)  # empty when every step of the window was skipped
        local = torch.tensor([self.losses[n] for n in names]) / max(1, self.micro_batches)
        device = accelerator.device
        counts = torch.stack([torch.as_tensor(self.tokens, device=device), torch.tensor(self.samples, device=device)])
        losses = accelerator.reduce(local.to(accelerator.device), "mean").tolist() if names else []
        tokens, samples = (int(x) for x in accelerator.reduce(counts, "sum").tolist())
        now = self.clock.elapsed()
        seconds = max(now - self.opened, 1e-9)
        state.tokens += tokens
        state.samples += samples
        record: dict[str, Any] = {"step": state.step, "epoch": state.epoch}
        record.update(zip(names, losses, strict=True))
        if not names:
            record["skipped_update"] = True
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
