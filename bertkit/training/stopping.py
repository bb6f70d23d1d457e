"""Why training stops before its end: a time budget, SIGINT/SIGTERM, or gradients that are not finite."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import torch
from accelerate import Accelerator

from bertkit.core.errors import BertkitError
from bertkit.training.telemetry import Clock

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


def nonfinite_error(step: int) -> TrainingError:
    return TrainingError(
        f"the loss or its gradients are not finite at step {step}; lower trainer.learning_rate or check the "
        "data (the last good checkpoint is kept), or set trainer.on_nonfinite_loss=skip to drop such updates"
    )


class StopConditions:
    """The time budget and SIGINT/SIGTERM, agreed on by all processes so that they stop at the same step."""

    def __init__(self, accelerator: Accelerator, max_minutes: float | None, clock: Clock) -> None:
        self.accelerator = accelerator
        self.budget = None if max_minutes is None else max_minutes * 60
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

    def _caught(self, signum: int, frame: FrameType | None) -> None:
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


class FirstNonFiniteStep:
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
            raise nonfinite_error(step)
