"""The Accelerator of a run, and what is left of it between the jobs of a Hydra sweep."""

from __future__ import annotations

import atexit
import functools
import hashlib
import logging
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

from bertkit.settings import MixedPrecision, TrainerConfig
from bertkit.training.engines import adopt_fsdp, cpu_forced, cpu_fsdp_plugin, refuse_engines_without_gpu
from bertkit.training.process_group import check_process_group
from bertkit.training.tracking import TRACKING_DIR

log = logging.getLogger(__name__)


def make_accelerator(cfg: TrainerConfig, seed: int, run_dir: Path | None = None) -> Accelerator:
    """The Accelerator for this run (device topology comes from `accelerate config`/launch, not Hydra), with
    the trackers of trainer.report_to writing below run_dir. Processes launched together are checked to form
    one group, and a sharded engine asked for on CPUs is set up or refused (engines)."""
    refuse_engines_without_gpu()
    processes = PartialState(cpu=cpu_forced())
    check_process_group(processes)
    fsdp_plugin = cpu_fsdp_plugin(processes)
    tracking_dir = str(run_dir / TRACKING_DIR) if run_dir is not None else None
    accelerator = Accelerator(
        log_with=list(cfg.report_to) or None,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=resolved_precision(cfg.mixed_precision, processes.device),
        # non_blocking: batches from pinned memory reach the GPU without the host waiting for the device.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed, non_blocking=True),
        project_config=ProjectConfiguration(
            project_dir=str(run_dir) if run_dir is not None else None,
            logging_dir=tracking_dir,
            automatic_checkpoint_naming=False,
        ),
        dynamo_backend="inductor" if cfg.torch_compile else "no",
        step_scheduler_with_optimizer=False,
        fsdp_plugin=fsdp_plugin,
    )
    if fsdp_plugin is not None:
        adopt_fsdp(accelerator, fsdp_plugin)
    set_seed(seed)
    return accelerator


def resolved_precision(precision: MixedPrecision, device: torch.device) -> str:
    """trainer.mixed_precision for Accelerate: `auto` is bf16 where the device computes it natively (a GPU
    with bf16, a CPU with AVX-512 BF16 or AMX), else no (emulated bf16 is slower than float32)."""
    if precision != MixedPrecision.auto:
        return str(precision)
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    else:
        native = False
    log.info("trainer.mixed_precision=auto: %s on this %s", "bf16" if native else "no", device.type)
    return "bf16" if native else "no"


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
