"""Build a run's tokenizer and data caches ahead of training, with the settings of the run:

    python -m bertkit.prepare +experiment=pretrain_bert_base [overrides]
    accelerate launch bertkit/train.py +experiment=pretrain_bert_base [the same overrides]

On a cluster, training processes wait for one of them to tokenize the corpus and build the instances; a
long wait there ends in collective time-outs. Run this once before the launch (on each machine, or once on a
shared file system): the run then finds everything in cache_dir and starts at once. It trains nothing, writes
no run directory, and needs no accelerator.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import datasets
import hydra
from omegaconf import DictConfig

from bertkit import config, preprocess
from bertkit.core.errors import BertkitError

log = logging.getLogger("bertkit.prepare")
config.register_configs()


def prepare(cfg: DictConfig) -> None:
    """The tokenizer and data caches of the run these settings describe."""
    started = time.perf_counter()
    run_cfg = config.load(cfg)
    task, architecture = preprocess.checked_task(run_cfg)
    tok, data = preprocess.build_inputs(run_cfg, task, architecture)
    splits = {"train": data.train} | data.evaluation | data.final_evaluation | data.prediction
    log.info(
        "Prepared in %.1fs under %s: the tokenizer (%d tokens); %s",
        time.perf_counter() - started, run_cfg.cache_dir, len(tok),
        ", ".join(f"{name} {_count(dataset)} examples" for name, dataset in splits.items()),
    )  # fmt: skip


def _count(dataset: Any) -> str:
    return f"{len(dataset):,}" if isinstance(dataset, datasets.Dataset) else "streamed"


@hydra.main(version_base="1.3", config_path=config.CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        prepare(cfg)
    except BertkitError as error:
        print(f"bertkit: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
