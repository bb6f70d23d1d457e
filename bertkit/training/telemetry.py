"""Telemetry of training: its clock, the window of steps since the last log line, and the log file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from bertkit.training.state import LoopState


class Clock:
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


class Window:
    """Losses, tokens and samples since the last log line; reduced across processes only when logged.

    Micro-batches wait in `pending` until their optimizer step is taken (commit) or dropped."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._open()

    def _open(self) -> None:
        self.losses: dict[str, torch.Tensor] = {}
        self.pending: list[tuple[dict[str, torch.Tensor], torch.Tensor | int, int]] = []
        self.micro_batches = 0
        self.tokens: torch.Tensor | int = 0  # summed on the device, read back only when logged
        self.samples = 0
        self.grad_norm: torch.Tensor | float | None = None
        self.opened = self.clock.elapsed()

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
                self.losses[name] = self.losses[name] + value if name in self.losses else value
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
        self._open()
        return record


class LogFile:
    """log.jsonl: one JSON object per logging step or evaluation, written by the main process only."""

    def __init__(self, path: Path, enabled: bool, also: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = path  # appended to: a resumed run continues its file; a new one starts in a new folder
        self.enabled = enabled
        self.also = also
        """Called with every record too (the experiment trackers)."""

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        if self.also is not None:
            self.also(record)
