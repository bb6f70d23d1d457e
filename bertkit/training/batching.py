"""Training order: length-grouped batches, an option for fine-tuning on texts of very different lengths."""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import numpy as np
import pyarrow.compute as pc
from torch.utils.data import Sampler

from bertkit.core.seeding import stable_seed


class LengthGroupedSampler(Sampler[int]):
    """A fresh shuffle every epoch, then sorted by length (longest first) within groups of `group_batches`
    batches: a batch holds examples of similar lengths, so dynamic padding adds little, while the order still
    changes from epoch to epoch. The order is a function of (seed, epoch) alone, so every process draws the
    same one and a resumed run replays it."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, group_batches: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.group = batch_size * group_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng(stable_seed(self.seed, self.epoch)).permutation(len(self.lengths))
        for start in range(0, len(order), self.group):
            group = order[start : start + self.group]
            yield from group[np.argsort(-self.lengths[group], kind="stable")].tolist()


def example_lengths(dataset: datasets.Dataset, column: str = "input_ids") -> np.ndarray:
    """Tokens per example, read from the Arrow list offsets (no token is read)."""
    table = dataset.with_format("arrow")[:]  # applies a select()'s indices mapping
    return pc.list_value_length(table[column]).to_numpy(zero_copy_only=False)
