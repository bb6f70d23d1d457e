"""The data config of extractive question answering."""

from __future__ import annotations

from dataclasses import dataclass

from bertkit.core.schema import input_path, require
from bertkit.readers.squad_json import SquadVersion
from bertkit.tasks.fine_tuning import FineTuningDataConfig


@dataclass(kw_only=True, slots=True)
class SquadDataConfig(FineTuningDataConfig):
    """Data recipe: extractive question answering on SQuAD-format JSON files, or the Hub's SQuAD."""

    version: SquadVersion = SquadVersion.v1
    train_file: str | None = input_path(None)
    """SQuAD JSON (data[].paragraphs[].qas[]). None: the Hub's rajpurkar/squad or squad_v2 (network)."""
    validation_file: str | None = input_path(None)
    """None with a train_file: hold out data.split_fraction of its articles (no article in both parts)."""
    split_fraction: float = 0.2
    split_seed: int = 42
    """Seed of the article split, independent of the training seed so every seed sees the same split."""
    hub_name: str | None = None
    """Hub dataset when train_file is None; None: rajpurkar/squad (v1) or rajpurkar/squad_v2 (v2)."""
    max_seq_length: int = 384
    doc_stride: int = 128
    """Tokens shared by consecutive windows of a context too long for one feature."""
    max_query_length: int = 64
    """Question tokens kept; longer questions are truncated and counted."""
    n_best_size: int = 20
    max_answer_length: int = 30
    """Longest answer span predicted, in tokens."""
    null_score_diff_threshold: float = 0.0
    """v2: predict no answer when null score - best span score exceeds this."""

    def __post_init__(self) -> None:
        require(self.max_seq_length >= 32, "data.max_seq_length", "must be >= 32")
        require(self.max_query_length >= 1, "data.max_query_length", "must be >= 1")
        require(
            self.max_query_length + 4 < self.max_seq_length,
            "data.max_query_length",
            f"must leave room for context within data.max_seq_length={self.max_seq_length}",
        )
        require(
            0 < self.doc_stride < self.max_seq_length - self.max_query_length - 3,
            "data.doc_stride",
            "must be > 0 and smaller than the context part of a feature (max_seq_length - max_query_length - 3)",
        )
        require(0 < self.split_fraction < 1, "data.split_fraction", "must be in (0, 1)")
        require(self.n_best_size >= 1, "data.n_best_size", "must be >= 1")
        require(self.max_answer_length >= 1, "data.max_answer_length", "must be >= 1")
        FineTuningDataConfig.__post_init__(self)
        require(
            self.train_file is not None or self.validation_file is None,
            "data.validation_file",
            "needs data.train_file (without it, both splits come from the Hub)",
        )
