"""Length-grouped batching: every example once per epoch, a new order each epoch, little padding."""

from __future__ import annotations

import numpy as np

from bertkit.training.batching import LengthGroupedSampler


def padding(order: list[int], lengths: np.ndarray, batch_size: int) -> int:
    batches = [lengths[order[i : i + batch_size]] for i in range(0, len(order), batch_size)]
    return int(sum(batch.max() * len(batch) - batch.sum() for batch in batches))


def test_each_epoch_is_a_permutation_in_its_own_order_with_less_padding():
    lengths = np.random.default_rng(0).integers(5, 120, size=1000)
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3, group_batches=10)
    first = list(sampler)
    assert sorted(first) == list(range(1000)) and list(sampler) == first  # deterministic per epoch
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(1000)) and second != first
    again = LengthGroupedSampler(lengths, batch_size=8, seed=3, group_batches=10)
    again.set_epoch(1)
    assert list(again) == second  # a function of (seed, epoch): every process and a resumed run agree
    shuffled = np.random.default_rng(1).permutation(1000).tolist()
    assert padding(first, lengths, 8) < padding(shuffled, lengths, 8) / 4
    group = first[:80]
    assert list(lengths[group]) == sorted(lengths[group], reverse=True)  # longest first within a group


def test_group_by_length_trains(tmp_path, cache_dir, tiny_checkpoint):
    from bertkit import train

    from .conftest import GLUE_FIXTURES, compose_config

    overrides = ["+experiment=glue_sst2", f"model.name_or_path={tiny_checkpoint}", f"data.glue_dir={GLUE_FIXTURES}",
                 "trainer.group_by_length=true", "trainer.max_steps=3", "trainer.per_device_batch_size=4",
                 "trainer.progress_bar=false", f"output_dir={tmp_path / 'run'}", f"cache_dir={cache_dir}"]  # fmt: skip
    assert "accuracy" in train.run(compose_config(overrides))["validation"]
