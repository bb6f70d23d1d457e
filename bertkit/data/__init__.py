"""Data recipes: each turns its config into a DataBundle; `build_data` picks one by the config's type."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedTokenizerBase

from bertkit.config import (
    CustomDataConfig,
    DataConfig,
    GlueDataConfig,
    NerDataConfig,
    PretrainCorpusConfig,
    SquadDataConfig,
)
from bertkit.data.bundle import DataBundle, TaskKind, TaskSpec

__all__ = ["DataBundle", "TaskKind", "TaskSpec", "build_data"]


def build_data(cfg: DataConfig, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> DataBundle:
    """Build the datasets, collators and task facts of the configured recipe."""
    match cfg:
        case PretrainCorpusConfig():
            from bertkit.data import pretraining

            return pretraining.build(cfg, tokenizer, cache_dir)
        case GlueDataConfig():
            from bertkit.data import glue

            return glue.build(cfg, tokenizer, cache_dir)
        case CustomDataConfig():
            from bertkit.data import custom

            return custom.build(cfg, tokenizer, cache_dir)
        case SquadDataConfig():
            from bertkit.data import squad

            return squad.build(cfg, tokenizer, cache_dir)
        case NerDataConfig():
            from bertkit.data import ner

            return ner.build(cfg, tokenizer, cache_dir)
    raise TypeError(f"no data recipe for {type(cfg).__name__}")
