"""Train a BERT: `accelerate launch bertkit/train.py +experiment=NAME [overrides]`.

Also `python bertkit/train.py ...` and `python -m bertkit.train ...`. The body of `run` is the whole data
flow, top to bottom: config -> task -> tokenizer -> task data -> model -> Trainer -> artifacts.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    # Run as a file, Python would put bertkit/ itself on sys.path and its modules (config, model, ...)
    # would shadow same-named top-level packages. Import bertkit as a package instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bertkit import artifacts, config, model, preprocess, run_dir
from bertkit.core.errors import BertkitError, ConfigError
from bertkit.training import distillation, hub, regularisers, tracking
from bertkit.training.accelerator import make_accelerator, release_accelerator
from bertkit.training.stopping import Interrupted
from bertkit.training.trainer import Trainer

log = logging.getLogger("bertkit")

config.register_configs()


def run(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """One training run; returns the final evaluation scores."""
    started = time.perf_counter()
    run_cfg = config.load(cfg)
    if getattr(run_cfg.data, "shard", None) is not None:
        raise ConfigError(
            "invalid setting data.shard: it builds one shard of the corpus with python -m bertkit.prepare; "
            "a training run reads all data.num_shards of them (leave data.shard unset)"
        )
    with run_dir.RunLog() as run_log:
        try:
            return _run(run_cfg, run_log, started)
        except run_dir.NothingToTrain as finished:
            log.info("Nothing to train: %s", finished)
            return artifacts.read_scores(Path(run_cfg.output_dir))


def _run(run_cfg: config.RunConfig, run_log: run_dir.RunLog, started: float) -> dict[str, dict[str, Any]]:
    task, architecture = preprocess.checked_task(run_cfg)
    tracking.check_trackers(run_cfg.trainer.report_to)
    distillation.check_readable(run_cfg.distill)
    if run_cfg.trainer.push_to_hub and run_cfg.trainer.hub_model_id:
        hub.check_reachable(run_cfg.trainer.hub_model_id)
    inputs = run_dir.input_fingerprints(run_cfg)
    plan = run_dir.plan(run_cfg, inputs)
    evaluate_only = run_cfg.trainer.max_steps == 0
    accelerator = make_accelerator(run_cfg.trainer, run_cfg.seed, plan.run_dir)
    regularisers.check(run_cfg.trainer, run_cfg.distill, task.compares_outputs, type(task).__name__, accelerator)
    regularisers.warn_without_dropout(run_cfg.trainer, model.has_dropout(architecture))
    if accelerator.is_main_process:
        run_dir.check_writable(plan.run_dir)
    else:
        run_log.discard()

    with accelerator.main_process_first():  # the main process fills the caches; the others read them
        tok, data = preprocess.build_inputs(run_cfg, task, architecture)
    preprocessing = time.perf_counter() - started
    built = model.build_model(run_cfg.model, data.spec, task.head(run_cfg.model), evaluate_only, task.cfg.packing)
    teacher = distillation.load_teacher(run_cfg.distill, task.head(run_cfg.model), built.model.config, tok, accelerator)
    if teacher is not None:
        cache_dir = Path(run_cfg.cache_dir).expanduser()
        distillation.attach_cached_logits(teacher, data, cache_dir, run_cfg.trainer.eval_batch_size)
    trainer = Trainer(
        accelerator, run_cfg.trainer, built.model, data, task, plan.run_dir, run_cfg.seed, plan.resume, teacher
    )
    if trainer.resumed and trainer.finished and (plan.run_dir / run_dir.METRICS).is_file():
        raise run_dir.NothingToTrain(f"{plan.run_dir} is at its last step ({trainer.state.step}); its results are kept")
    if accelerator.is_main_process:
        run_dir.claim(plan, run_cfg, inputs, trainer.state.step)
        run_log.write_to(plan.run_dir / run_dir.TRAIN_LOG)
    accelerator.wait_for_everyone()
    tracking.start(accelerator, f"{run_cfg.name}/seed{run_cfg.seed}", run_dir.record_of(run_cfg))

    result = trainer.fit()

    if accelerator.is_main_process:
        timings = {"preprocessing": preprocessing, "total": time.perf_counter() - started}
        artifacts.write_results(run_cfg, plan.run_dir, result, tok, task, data, timings, built.fresh_modules)
        log.info("Wrote %s (metrics.json, model/, curves.png)", plan.run_dir)
        if run_cfg.trainer.push_to_hub and run_cfg.trainer.hub_model_id:
            hub.push(plan.run_dir / artifacts.MODEL_DIR, run_cfg.trainer.hub_model_id)
    tracking.finish(accelerator, result.scores, trainer.state.step)
    accelerator.wait_for_everyone()
    release_accelerator()
    return result.scores


class _Progress:
    task_started = False
    """Set once Hydra hands over the composed config: an exit status 1 before it is one of Hydra's errors."""


@hydra.main(version_base="1.3", config_path=config.CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """One run; in a multirun, returns the score a search sweeper (Optuna) optimizes."""
    _Progress.task_started = True
    try:
        run(cfg)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return artifacts.objective_value(Path(cfg.output_dir), cfg.get("optimized_metric"))
        return None
    except Interrupted as stopped:
        print(f"bertkit: {stopped}", file=sys.stderr)
        sys.exit(128 + stopped.signum)  # the shell's convention for a process ended by that signal
    except BertkitError as error:
        # Bad input is the user's to fix: one line that names the file or setting, not a traceback.
        print(f"bertkit: error: {error}", file=sys.stderr)
        sys.exit(2)


def cli() -> None:
    """The command line. Hydra's own errors (an unknown override or option) exit 2, as bertkit's do: every
    bad input has one status."""
    try:
        main()
    except SystemExit as leaving:
        if leaving.code == 1 and not _Progress.task_started:
            sys.exit(2)
        raise


if __name__ == "__main__":
    cli()
