"""Resumable state: written whole or not at all, kept to the newest K, resumed only into the same run.

A checkpoint is `checkpoints/step_N/`: Accelerate's `save_state` (model, optimizer, scheduler, gradient
scaler, RNG states; every process takes part, as FSDP and DeepSpeed need) plus `loop_state.json`, the
position in the data. It is written as `step_N.tmp/`, synced to disk, then renamed, so a crash at any
moment leaves either the complete checkpoint or a `.tmp` folder that resuming ignores with a warning.

Nothing here unpickles: Accelerate reads its files with `torch.load(weights_only=True)`, and the loop's
own state is JSON.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
LOOP_STATE = "loop_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def save(
    accelerator: Accelerator,
    folder: Path,
    step: int,
    keep_last: int,
    loop_state: dict[str, Any],
    keep: int | None = None,
) -> Path:
    """Write step_N atomically (all processes call this), then drop the oldest beyond keep_last, never step
    `keep` (the best one)."""
    final = folder / f"step_{step}"
    staging = folder / f"step_{step}.tmp"
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        (staging / LOOP_STATE).write_text(json.dumps(loop_state, indent=2) + "\n")
        _sync_tree(staging)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # the same step saved before (a rerun): replace it only once the new one is whole
            shutil.rmtree(final)
        staging.rename(final)
        _sync_dir(folder)
        for old in complete(folder)[:-keep_last]:
            if old.name != f"step_{keep}":
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def complete(folder: Path) -> list[Path]:
    """Finished checkpoints, oldest first; step_N.tmp folders are partial writes and never count."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found) if (path / LOOP_STATE).is_file()]


def resume(accelerator: Accelerator, folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """Load the newest complete checkpoint into the prepared objects; returns it and the loop position."""
    for partial in sorted(folder.glob("step_*.tmp")) if folder.is_dir() else []:
        log.warning("Ignoring %s: a checkpoint whose writing did not finish", partial)
    found = complete(folder)
    if not found:
        return None
    accelerator.load_state(str(found[-1]))
    return found[-1], json.loads((found[-1] / LOOP_STATE).read_text())


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder below `folder`, so the rename that follows publishes data on disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _sync_dir(Path(root))


def _sync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
