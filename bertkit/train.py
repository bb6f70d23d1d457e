"""Train a BERT: `accelerate launch bertkit/train.py +experiment=NAME [overrides]`.

Also `python bertkit/train.py ...` and `python -m bertkit.train ...`. The body of `run` is the whole data
flow, top to bottom: config -> task -> tokenizer -> task data -> model -> Trainer -> artifacts.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, cast

if __name__ == "__main__" and not __package__:
    # Run as a file, Python would put bertkit/ itself on sys.path and its modules (config, model, ...)
    # would shadow same-named top-level packages. Import bertkit as a package instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import hydra
from omegaconf import DictConfig, OmegaConf

from bertkit import artifacts, config, model, tokenizer
from bertkit.core.errors import BertkitError
from bertkit.settings import ResumeMode
from bertkit.tasks.registry import task_for
from bertkit.training import checkpoints
from bertkit.training.accelerator import make_accelerator, release_accelerator
from bertkit.training.stopping import Interrupted
from bertkit.training.trainer import Trainer

log = logging.getLogger("bertkit")
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

config.register_configs()


def run(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """One training run; returns the final evaluation scores."""
    started = time.perf_counter()
    run_cfg = config.load(cfg)
    task = task_for(run_cfg.data)
    run_dir, cache_dir = Path(run_cfg.output_dir), Path(run_cfg.cache_dir).expanduser()
    _check_run_dir(run_cfg, run_dir)
    model.check_sequence_length(model.architecture(run_cfg.model), task.max_seq_length)
    accelerator = make_accelerator(run_cfg.trainer, run_cfg.seed)
    if accelerator.is_main_process:
        artifacts.check_writable(run_dir)
    else:
        _console_logging_only()

    with accelerator.main_process_first():  # the main process fills the caches; the others read them
        tok = tokenizer.build(run_cfg.tokenizer, run_cfg.model, lambda: task.training_text(cache_dir), cache_dir)
        data = task.build(tok, cache_dir)
    preprocessing = time.perf_counter() - started
    net = model.build_model(run_cfg.model, data.spec, task.head(run_cfg.model))
    if accelerator.is_main_process:
        artifacts.write_config(run_cfg, run_dir)

    result = Trainer(accelerator, run_cfg.trainer, net, data, task, run_dir, run_cfg.seed).fit()

    if accelerator.is_main_process:
        timings = {"preprocessing": preprocessing, "total": time.perf_counter() - started}
        artifacts.write_results(run_cfg, run_dir, result, tok, task, data, timings)
        log.info("Wrote %s (metrics.json, model/, curves.png)", run_dir)
    accelerator.wait_for_everyone()
    release_accelerator()
    return result.scores


def _check_run_dir(run_cfg: config.RunConfig, run_dir: Path) -> None:
    """Refuse a run directory that holds another run, before any work."""
    resolved = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(run_cfg), enum_to_str=True))
    checkpoints.check_run_dir(
        run_dir,
        resolved,
        force=run_cfg.trainer.resume == ResumeMode.force,
        resumable=config.resumable_settings(run_cfg),
        defaults=config.schema_defaults(run_cfg),
    )


def _console_logging_only() -> None:
    """Processes other than the main one keep their messages on the console: the run directory's files
    are the main process's."""
    for handler in list(logging.getLogger().handlers):
        if isinstance(handler, logging.FileHandler):
            logging.getLogger().removeHandler(handler)
            handler.close()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except Interrupted as stopped:
        print(f"bertkit: {stopped}", file=sys.stderr)
        sys.exit(128 + stopped.signum)  # the shell's convention for a process ended by that signal
    except BertkitError as error:
        # Bad input is the user's to fix: one line that names the file or setting, not a traceback.
        print(f"bertkit: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
