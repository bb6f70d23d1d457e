"""The whole pretraining path in-process: caching, static masking, accumulation, artifacts."""

from __future__ import annotations

import json

import pytest

from bertkit import train
from bertkit.core.errors import DataError
from bertkit.settings import TokenizerConfig
from bertkit.tasks.pretraining.config import CorpusSource, MaskingConfig, MaskingMode, PretrainCorpusConfig

from .conftest import SHARED, TINY_CORPUS, build_data, compose_config, requires_shared, wordpiece


def tiny_data(**settings) -> PretrainCorpusConfig:
    return PretrainCorpusConfig(
        source=CorpusSource.sentence_files,
        paths=[str(TINY_CORPUS)],
        eval_fraction=0.3,
        max_seq_length=64,
        num_proc=1,
        **settings,
    )


@pytest.fixture
def tiny_tokenizer(cache_dir):
    return wordpiece(TokenizerConfig(vocab_size=300, min_frequency=1), tiny_data(), cache_dir)


def test_second_build_reuses_the_cache(tiny_tokenizer, cache_dir):
    first = build_data(tiny_data(), tiny_tokenizer, cache_dir)
    second = build_data(tiny_data(), tiny_tokenizer, cache_dir)
    assert first.train.cache_files and first.train.cache_files == second.train.cache_files
    assert first.stats == second.stats
    changed = build_data(tiny_data(short_seq_prob=0.5), tiny_tokenizer, cache_dir)
    assert changed.train.cache_files != first.train.cache_files  # another setting, another fingerprint


def test_stats_report_what_was_built(tiny_tokenizer, cache_dir):
    bundle = build_data(tiny_data(), tiny_tokenizer, cache_dir)
    train_stats = bundle.stats["train"]
    assert train_stats["documents"] + bundle.stats["heldout"]["documents"] == 6
    assert train_stats["sentences"] == 6 * train_stats["documents"]
    assert train_stats["instances"] == len(bundle.train)
    assert 0 <= train_stats["nsp_random_next_fraction"] <= 1
    assert train_stats["mean_instance_tokens"] <= 64
    assert "labels" in bundle.evaluation["heldout"].column_names  # held-out masks are fixed
    assert "labels" not in bundle.train.column_names  # training masks are drawn per batch


def test_static_masking_with_dupe_factor(tiny_tokenizer, cache_dir):
    once = build_data(tiny_data(), tiny_tokenizer, cache_dir)
    static = build_data(
        tiny_data(masking=MaskingConfig(mode=MaskingMode.static), dupe_factor=3), tiny_tokenizer, cache_dir
    )
    assert "labels" in static.train.column_names
    assert len(static.train) > 2 * len(once.train)
    batch = static.collate_train([static.train[i] for i in range(4)])
    assert (batch["labels"] != -100).any()


def test_hub_source_offline_says_what_to_do(tiny_tokenizer, cache_dir):
    with pytest.raises(
        DataError, match=r"could not load Hub dataset 'Salesforce/wikitext' \(data\.hub_name.*data\.source=local"
    ):
        build_data(
            PretrainCorpusConfig(
                source=CorpusSource.hub, hub_name="Salesforce/wikitext", hub_config="wikitext-2-raw-v1"
            ),
            tiny_tokenizer,
            cache_dir,
        )


def test_gradient_accumulation_counts_optimizer_steps(tiny_run, tmp_path):
    scores = train.run(compose_config(tiny_run("trainer.gradient_accumulation_steps=2", "trainer.max_steps=3")))
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["throughput"]["samples_per_second"] > 0
    assert metrics["throughput"]["steps"] == 3
    assert scores["heldout"]["mlm_predictions"] > 0
    assert all(r["grad_norm"] is not None for r in steps)
    assert steps[0]["lr"] > steps[-1]["lr"] or len(steps) == 1  # linear decay to zero


def test_whole_word_masking_trains(tiny_run, tmp_path):
    train.run(compose_config(tiny_run("data.masking.whole_word=true", "trainer.max_steps=2")))
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.shared_data
@requires_shared
def test_continued_pretraining_from_minilm_end_to_end(tiny_run, tmp_path):
    checkpoint = SHARED / "models" / "all-MiniLM-L6-v2"
    train.run(
        compose_config(
            tiny_run(
                "model=pretrained",
                f"model.name_or_path={checkpoint}",
                "trainer.max_steps=3",
                "data.max_seq_length=64",
                "trainer.learning_rate=1e-4",
            )
        )
    )
    from transformers import BertForPreTraining

    model = BertForPreTraining.from_pretrained(tmp_path / "run" / "model")
    assert model.config.num_hidden_layers == 6 and model.config.vocab_size == 30522
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"continued from `{checkpoint}`" in card


def test_same_seed_same_weights(tiny_run, tmp_path):
    """Seeds make a run reproducible: weight init, data order and dynamic masks all follow `seed`."""
    from safetensors.torch import load_file

    weights = []
    for attempt in ("a", "b"):
        overrides = tiny_run("trainer.max_steps=3", "trainer.resume=never", f"output_dir={tmp_path / attempt}")
        train.run(compose_config(overrides))
        weights.append(load_file(tmp_path / attempt / "model" / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert (weights[0][name] == weights[1][name]).all(), name
