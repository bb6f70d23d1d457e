"""Train a BERT: `accelerate launch bertkit/train.py +experiment=NAME [overrides]`.

Also `python bertkit/train.py ...` and `python -m bertkit.train ...`. The body of `run` is the whole data
flow, top to bottom: config -> tokenizer -> data recipe -> model recipe -> loop -> metrics -> artifacts.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a file, Python would put bertkit/ itself on sys.path and its modules (config, data, ...)
    # would shadow same-named top-level packages. Import bertkit as a package instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import hydra
from omegaconf import DictConfig

from bertkit import artifacts, config, loop, metrics, model, tokenizer
from bertkit.data import build_data
from bertkit.errors import BertkitError

log = logging.getLogger("bertkit")
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

config.register_configs()


def run(cfg: DictConfig) -> dict:
    """One training run; returns the final evaluation scores."""
    started = time.perf_counter()
    run_cfg = config.load(cfg)
    run_dir, cache_dir = Path(run_cfg.output_dir), Path(run_cfg.cache_dir).expanduser()
    model.check_sequence_length(model.architecture(run_cfg.model), run_cfg.data.max_seq_length)
    accelerator = loop.make_accelerator(run_cfg.trainer, run_cfg.seed)
    if accelerator.is_main_process:
        artifacts.check_writable(run_dir)

    with accelerator.main_process_first():  # the main process fills the caches; the others read them
        tok = tokenizer.build(run_cfg.tokenizer, run_cfg.model, run_cfg.data, cache_dir)
        bundle = build_data(run_cfg.data, tok, cache_dir)
    preprocessing = time.perf_counter() - started
    net = model.build_model(run_cfg.model, bundle.task)
    if accelerator.is_main_process:
        artifacts.write_config(run_cfg, run_dir)

    result = loop.train(accelerator, run_cfg.trainer, net, bundle, metrics.scorer(bundle.task), run_dir)

    if accelerator.is_main_process:
        timings = {"preprocessing": preprocessing, "total": time.perf_counter() - started}
        artifacts.write_results(run_cfg, run_dir, result, tok, bundle, timings)
        log.info("Wrote %s (metrics.json, model/, curves.png)", run_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result.scores


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except BertkitError as error:
        # Bad input is the user's to fix: one line that names the file or setting, not a traceback.
        print(f"bertkit: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
