"""The task-agnostic Trainer on Accelerate: prepare, accumulate, clip, step, log, evaluate, checkpoint.

It knows no task: the task's data supplies datasets and collators, and the task (through `Evaluation`)
what to gather at evaluation and how to decode and score it.

Every source of training randomness is keyed by position, not by history: the data order by (seed, epoch)
(Accelerate's seedable sampler), the data recipe's random choices such as MLM masks by (seed, epoch,
example index) (training examples reach the collator with their index), and dropout by (seed, epoch,
micro-batch, process) (the generator is re-seeded before each forward pass). So a run restarted from a
checkpoint replays exactly what the uninterrupted run did, whatever the data loader prefetched and
however many worker processes it used.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object, send_to_device
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from bertkit.core.batch import EPOCH, EXAMPLE_INDEX, STREAM_POSITION, Batch
from bertkit.core.errors import BertkitError
from bertkit.core.result import TrainResult
from bertkit.core.seeding import stable_seed
from bertkit.core.task import Evaluation, ProcessStream, TaskData, TrainingStream
from bertkit.settings import MixedPrecision, NonFiniteLoss, TrainerConfig
from bertkit.training import checkpoints, engines, optim, tracking
from bertkit.training.accelerator import weights_agree
from bertkit.training.batching import LengthGroupedSampler, example_lengths
from bertkit.training.distillation import Teacher
from bertkit.training.evaluation import evaluate_splits, predict_splits
from bertkit.training.loss_step import LossStep
from bertkit.training.selection import Selection
from bertkit.training.state import LoopState
from bertkit.training.stopping import (
    OUT_OF_TIME,
    FirstNonFiniteStep,
    Interrupted,
    StopConditions,
    TrainingError,
    nonfinite_error,
)
from bertkit.training.telemetry import Clock, LogFile, Window

log = logging.getLogger(__name__)


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


@contextmanager
def one_line_errors_from_workers() -> Iterator[None]:
    """A data loader's worker re-raises a bertkit error with its traceback in the message; bad input is one line."""
    try:
        yield
    except BertkitError as error:
        lines = str(error).strip().splitlines()
        if len(lines) > 1 and lines[0].startswith("Caught "):  # torch's ExceptionWrapper: "<type path>: <message>"
            raise type(error)(lines[-1].partition(": ")[2]) from None
        raise


class Trainer:
    """Trains until max_steps, num_epochs or max_minutes, evaluating and checkpointing on the way; then
    evaluates and predicts with the final model (`fit`)."""

    def __init__(
        self,
        accelerator: Accelerator,
        cfg: TrainerConfig,
        model: torch.nn.Module,
        data: TaskData,
        task: Evaluation,
        run_dir: Path,
        seed: int,
        resume: bool = True,
        teacher: Teacher | None = None,
    ) -> None:
        self.accelerator, self.cfg, self.data, self.task = accelerator, cfg, data, task
        self.run_dir, self.seed, self.teacher = run_dir, seed, teacher
        self.checkpoints = run_dir / checkpoints.CHECKPOINTS
        self.stream: ProcessStream | None = None
        self.stream_position: dict[str, Any] | None = None
        self.keyed_train: KeyedDataset | None = None
        if isinstance(data.train, TrainingStream):  # data.streaming: this process's shard of the stream
            self.stream = data.train.for_process(accelerator.process_index, accelerator.num_processes, seed)
        else:
            self.keyed_train = KeyedDataset(data.train)
        self.state = LoopState()
        self.history: list[dict[str, Any]] = []
        self.selection: Selection | None = None
        if cfg.eval_every or cfg.eval_every_epoch:
            self.selection = Selection(cfg, task.headline_metrics, list(data.evaluation))
        self.best_to_save = False
        self._prepare(model)
        self.total_steps = self._total_steps()
        # Prepared (not registered) so that Accelerate saves it as its own scheduler.bin, read back unpickled.
        self.scheduler = accelerator.prepare(optim.build_scheduler(self.optimizer, cfg, self.total_steps))
        self.resumed = resume and self._resume()
        if self.state.stopped_early:  # early stopping ended this run: it is finished, whatever the budget says
            self.total_steps = self.state.step
        self.log_file = LogFile(
            run_dir / "log.jsonl", accelerator.is_main_process, lambda record: tracking.log_record(accelerator, record)
        )
        self.clock = Clock(self.state.train_seconds)
        self.window = Window(self.clock)
        self.stop = StopConditions(accelerator, cfg.max_minutes, self.clock)
        # With fp16 the gradient scaler skips overflowing steps itself; only other runs treat them as errors.
        self.check_finite = cfg.mixed_precision != MixedPrecision.fp16
        self.nonfinite = FirstNonFiniteStep(accelerator.device)
        self.progress = tqdm(
            total=self.total_steps,
            initial=self.state.step,
            disable=not (cfg.progress_bar and accelerator.is_main_process),
            desc="Training",
            dynamic_ncols=True,
        )

    # ------------------------------------------------------------------------------------------ set-up

    def _prepare(self, model: torch.nn.Module) -> None:
        """Loaders, optimizer and model, prepared for the devices and processes of this launch."""
        cfg, accelerator = self.cfg, self.accelerator
        splits = self.data.evaluation | self.data.final_evaluation | self.data.prediction
        loaders = {
            name: DataLoader(dataset, batch_size=cfg.eval_batch_size, collate_fn=self.data.collate_eval)
            for name, dataset in splits.items()
        }
        engines.shard_tied_output_together(model, accelerator)
        optimizer = optim.build_optimizer(model, cfg, accelerator.device)
        if self.stream is None:
            prepared = accelerator.prepare(model, optimizer, self._train_loader(), *loaders.values())
            self.model, self.optimizer, self.train_loader = prepared[:3]
            prepared = prepared[3:]
        else:  # each process reads its own shard: Accelerate would split one process's batches among all
            self.model, self.optimizer, *prepared = accelerator.prepare(model, optimizer, *loaders.values())
            self.train_loader = self._stream_loader(self.stream)
        self.loss_step = LossStep(cfg, self.task, accelerator, self.model, self.teacher)
        loaders = dict(zip(loaders, prepared, strict=True))
        self.predict_loaders = {name: loaders.pop(name) for name in self.data.prediction}
        self.final_loaders = {name: loaders.pop(name) for name in self.data.final_evaluation}
        self.eval_loaders = loaders

    def _train_loader(self) -> DataLoader:
        cfg = self.cfg
        assert self.keyed_train is not None  # a training set of known length
        grouped = None
        if cfg.group_by_length:
            grouped = LengthGroupedSampler(example_lengths(self.data.train), cfg.per_device_batch_size, self.seed)
        return DataLoader(
            self.keyed_train,
            batch_size=cfg.per_device_batch_size,
            shuffle=grouped is None,
            sampler=grouped,
            collate_fn=self.data.collate_train,
            num_workers=cfg.num_workers,
            pin_memory=self.accelerator.device.type == "cuda",
            drop_last=True,  # equal shards on every process; a ragged last batch would skew the loss scale
        )

    def _stream_loader(self, stream: ProcessStream) -> DataLoader:
        """Batches of this process's stream, built in one worker process (trainer.num_workers=1) or inline."""
        return DataLoader(
            cast(IterableDataset, stream),
            batch_size=self.cfg.per_device_batch_size,
            collate_fn=self.data.collate_train,
            num_workers=self.cfg.num_workers,
            pin_memory=self.accelerator.device.type == "cuda",
        )

    def _total_steps(self) -> int:
        if self.stream is not None:
            if self.cfg.max_steps is None:
                raise TrainingError("data.streaming reads a corpus of unknown length: set trainer.max_steps")
            return self.cfg.max_steps
        # accumulate() also steps at the end of every epoch, after fewer micro-batches if they do not divide.
        steps_per_epoch = math.ceil(len(self.train_loader) / self.cfg.gradient_accumulation_steps)
        total = self.cfg.max_steps if self.cfg.max_steps is not None else steps_per_epoch * self.cfg.num_epochs
        if steps_per_epoch == 0 and total > 0:
            raise TrainingError(
                f"the training set ({len(self.train_loader.dataset)} examples) is smaller than one batch of "
                f"trainer.per_device_batch_size={self.cfg.per_device_batch_size} x "
                f"{self.accelerator.num_processes} processes"
            )
        return total

    def _resume(self) -> bool:
        """Load the newest checkpoint of the run directory, if there is one to resume from."""
        resumed = checkpoints.resume(self.accelerator, self.checkpoints)
        if resumed is None:
            return False
        self.state = LoopState(**resumed[1])
        log.info("Resumed from %s (step %d, epoch %d)", resumed[0], self.state.step, self.state.epoch)
        if self.stream is not None and self.state.streams is not None:
            if len(self.state.streams) != self.accelerator.num_processes:
                raise TrainingError(
                    f"{resumed[0]} was written by {len(self.state.streams)} processes reading their own shards of "
                    f"the stream (data.streaming); resume it with as many, not {self.accelerator.num_processes}"
                )
            self.stream_position = self.state.streams[self.accelerator.process_index]
            self.stream.resume_from(self.stream_position)
        return True

    @property
    def finished(self) -> bool:
        """Nothing is left to train (a resumed run that had reached its end)."""
        return self.state.step >= self.total_steps

    # ---------------------------------------------------------------------------------------- training

    def fit(self) -> TrainResult:
        """Train, then evaluate and predict with the final model."""
        self.model.train()
        train = self._train_epoch if self.stream is None else self._train_stream
        with self.stop.signals_caught():
            while self.state.step < self.total_steps:
                train()
        return self._finish()

    def _train_epoch(self) -> None:
        """Micro-batches from where the epoch stands until its end (or the end of training)."""
        state = self.state
        self.train_loader.set_epoch(state.epoch)
        # Accelerate passes the epoch on to the sampler but, when several processes shard it, not to the
        # dataset: MLM masks keyed by epoch would repeat every epoch.
        assert self.keyed_train is not None
        self.keyed_train.set_epoch(state.epoch)
        for batch in self.accelerator.skip_first_batches(self.train_loader, state.batch_in_epoch):
            if self._train_on(batch):
                return
        state.epoch += 1
        state.batch_in_epoch = 0
        if self.cfg.eval_every_epoch and state.step < self.total_steps:
            self._evaluate_during_training()
            if self.best_to_save:
                self.save()

    def _train_stream(self) -> None:
        """Micro-batches of the stream until the end of training (the stream starts its epochs itself)."""
        with one_line_errors_from_workers():
            for batch in self.train_loader:
                self.stream_position = batch.pop(STREAM_POSITION)
                if self._train_on(send_to_device(batch, self.accelerator.device)):
                    return

    def _train_on(self, batch: Batch) -> bool:
        """One micro-batch of the epoch, dropout drawn from a generator keyed by its position (so it replays on
        resume); True: training is over."""
        state = self.state
        state.batch_in_epoch += 1
        torch.manual_seed(stable_seed(self.seed, state.epoch, state.batch_in_epoch, self.accelerator.process_index))
        return self.micro_step(batch) and self._after_step()

    def micro_step(self, batch: Batch) -> bool:
        """Forward and backward on one micro-batch; at an accumulation boundary also clip and update. Returns
        whether this micro-batch ended an optimizer step (its update applied, or dropped as not finite)."""
        accelerator = self.accelerator
        with accelerator.accumulate(self.model):
            output = self.loss_step(self.model, batch)
            self.window.add(output, batch["attention_mask"].sum(), len(batch["input_ids"]))
            update = self._clip_gradients() if accelerator.sync_gradients else True
            if update:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return accelerator.sync_gradients

    def _clip_gradients(self) -> bool:
        """Clip by global norm (reduced over all processes, so all take the same branch); False: drop the
        update because the gradients are not finite (on_nonfinite_loss=skip)."""
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else math.inf
        norm = self.window.grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), max_norm)
        if not self.check_finite or norm is None:  # under DeepSpeed a float, None before its first step
            return True
        if self.cfg.on_nonfinite_loss == NonFiniteLoss.stop and torch.is_tensor(norm):
            self.nonfinite.note(norm, self.state.step + 1)
            return True
        if math.isfinite(norm):  # skipping this update needs the norm now
            return True
        if self.cfg.on_nonfinite_loss == NonFiniteLoss.stop:
            raise nonfinite_error(self.state.step + 1)
        self.window.drop_pending()
        self.state.skipped_steps += 1
        log.warning("step %d: the gradients are not finite; this update is skipped", self.state.step + 1)
        return False

    def _after_step(self) -> bool:
        """Log, evaluate, save and check the stop conditions after an optimizer step; True: training is over."""
        state, cfg = self.state, self.cfg
        self.window.commit()
        self.scheduler.step()
        state.step += 1
        self.progress.update(1)
        if state.step % cfg.log_every == 0 or state.step == self.total_steps:
            self._log()
        if cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < self.total_steps:
            self._evaluate_during_training()
        if (cfg.save_every and state.step % cfg.save_every == 0) or self.best_to_save:
            self.save()
        reason = self.stop.check()
        if reason == OUT_OF_TIME:
            self.total_steps = state.step  # evaluate and save as if the budget ended here
        elif isinstance(reason, int):
            self._interrupt(reason)
        return state.step >= self.total_steps

    def _log(self) -> None:
        self.nonfinite.raise_if_seen()
        record = self.window.flush(self.accelerator, self.state, self.scheduler.get_last_lr()[0])
        self.log_file.write(record)
        if "loss" in record:  # absent when every step since the last line was skipped
            self.progress.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_second']:.0f}")

    def _evaluate_during_training(self) -> None:
        self.nonfinite.raise_if_seen()
        with self.clock.paused():
            started = time.perf_counter()
            scores, _ = evaluate_splits(self.accelerator, self.model, self.eval_loaders, self.task, self.state.step)
            self.history.append(self._record(scores))
            self.state.eval_seconds += time.perf_counter() - started
        self.log_file.write(self.history[-1])
        self.model.train()
        self._select(scores)

    def _select(self, scores: dict[str, dict[str, Any]]) -> None:
        """A new best is saved (its checkpoint kept); early stopping ends training after this step."""
        if self.selection is None:
            return
        verdict = self.selection.observe(scores, self.state)
        self.best_to_save = verdict.improved
        if verdict.stop_reason is not None:
            log.warning("Stopping early at step %d: %s", self.state.step, verdict.stop_reason)
            self.state.stopped_early = verdict.stop_reason
            self.total_steps = self.state.step

    def save(self) -> Path:
        """A checkpoint of this step (every process takes part)."""
        self.nonfinite.raise_if_seen()  # never a checkpoint of weights updated with non-finite gradients
        self.state.train_seconds = self.clock.elapsed()
        if self.stream is not None:  # where each process's shard stands (a collective: every process saves)
            self.state.streams = gather_object([self.stream_position])
        self.best_to_save = False
        with self.clock.paused():
            return checkpoints.save(
                self.accelerator,
                self.checkpoints,
                self.state.step,
                self.cfg.keep_last,
                asdict(self.state),
                keep=self.state.best_step,
            )

    def _interrupt(self, signum: int) -> None:
        """Save where training stands and leave (a signal asked to stop)."""
        self.progress.close()
        if self.window.micro_batches:
            self.log_file.write(self.window.flush(self.accelerator, self.state, self.scheduler.get_last_lr()[0]))
        saved = self.checkpoints / f"step_{self.state.step}"
        if not self._saved(self.state.step):
            saved = self.save()
        raise Interrupted(signum, self.state.step, saved)

    def _record(self, scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {"step": self.state.step, "epoch": self.state.epoch, "eval": scores}

    # ------------------------------------------------------------------------------------------ finish

    def _finish(self) -> TrainResult:
        """The final evaluation (of the best weights, where evaluations chose one), predictions, the last
        checkpoint, throughput and the gathered weights."""
        state, accelerator = self.state, self.accelerator
        self.progress.close()
        self.nonfinite.raise_if_seen()
        if self.window.micro_batches:  # stopped by the time budget between two log lines
            self.log_file.write(self.window.flush(accelerator, state, self.scheduler.get_last_lr()[0]))
        state.train_seconds = self.clock.elapsed()
        started = time.perf_counter()
        scores, predictions = self._final_evaluation()
        eval_seconds = time.perf_counter() - started
        predictions |= predict_splits(accelerator, self.model, self.predict_loaders, self.task)
        throughput = self._throughput(eval_seconds)
        state_dict = accelerator.get_state_dict(self.model)  # a collective under FSDP/DeepSpeed: all processes
        return TrainResult(
            model=accelerator.unwrap_model(self.model),
            state_dict=state_dict if accelerator.is_main_process else None,
            scores=scores,
            history=self.history,
            throughput=throughput,
            predictions=predictions,
            best=self.selection.best(state) if self.selection else None,
            stopped_early={"step": state.step, "reason": state.stopped_early} if state.stopped_early else None,
        )

    def _final_evaluation(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Evaluate the last weights and checkpoint them; then, if an earlier evaluation was better, load its
        checkpoint and evaluate that: the model, its scores and predictions are the best's."""
        state, accelerator = self.state, self.accelerator
        loaders = self.eval_loaders | self.final_loaders
        scores, predictions = evaluate_splits(accelerator, self.model, loaders, self.task, state.step)
        self.history.append(self._record(scores))
        self.log_file.write(self.history[-1])
        if self.selection is not None:
            self.selection.observe(scores, state)
        if (self.cfg.save_every or self.selection) and state.step > 0 and not self._saved(state.step):
            self.save()  # the last state, so that starting this finished run again trains nothing
        if self.selection is None or state.best_step in (None, state.step):
            return scores, predictions
        log.info("Loading the best evaluation's weights (step %d, %s)", state.best_step, self.selection.name)
        accelerator.load_state(str(self.checkpoints / f"step_{state.best_step}"))
        return evaluate_splits(accelerator, self.model, loaders, self.task, state.best_step)

    def _saved(self, step: int) -> bool:
        return (self.checkpoints / f"step_{step}").exists()

    def _throughput(self, final_eval_seconds: float) -> dict[str, Any]:
        state, seconds = self.state, self.state.train_seconds
        throughput: dict[str, Any] = {
            "steps": state.step,
            "train_seconds": seconds,
            "tokens_per_second": state.tokens / seconds if seconds else 0.0,
            "samples_per_second": state.samples / seconds if seconds else 0.0,
            "eval_seconds_during_training": state.eval_seconds,
            "final_eval_seconds": final_eval_seconds,
            "processes": self.accelerator.num_processes,
            "distributed_type": str(self.accelerator.distributed_type.value),
            "mixed_precision": str(self.accelerator.mixed_precision),  # what trainer.mixed_precision=auto became
            "skipped_nonfinite_steps": state.skipped_steps,
        }
        if self.accelerator.distributed_type in (DistributedType.MULTI_GPU, DistributedType.MULTI_CPU):
            throughput["weights_identical_across_processes"] = weights_agree(self.accelerator, self.model)
        return throughput
