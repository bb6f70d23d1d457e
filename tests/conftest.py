"""Shared fixtures: composed configs, a tiny corpus and tokenizer, per-test output and cache folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may wait on the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hydra import compose, initialize_config_dir  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from bertkit import config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent / "assets"
SHARED = ROOT.parent / "shared"
TINY_CORPUS = ASSETS / "tiny_corpus.txt"
GLUE_FIXTURES = ASSETS / "glue"
"""Hand-written GLUE files in the original layout (CoLA without header, MRPC with a byte-order mark, ...)."""

# Overrides that shrink any pretraining run to seconds on the hand-written corpus.
TINY_OVERRIDES = [
    "data.source=sentence_files",
    f"data.paths=[{TINY_CORPUS}]",
    "data.eval_fraction=0.3",
    "data.max_seq_length=64",
    "data.num_proc=1",
    "tokenizer.vocab_size=300",
    "tokenizer.min_frequency=1",
    "model.hidden_size=64",
    "model.num_attention_heads=2",
    "model.intermediate_size=128",
    "trainer.per_device_batch_size=4",
    "trainer.eval_batch_size=8",
    "trainer.progress_bar=false",
]

# Property-based tests read files through datasets (milliseconds to a quarter second a case), so no deadline;
# the examples database stays off so that every run draws the same number of fresh cases.
for name, examples in (("default", 100), ("thorough", 1000)):
    settings.register_profile(
        name, max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

requires_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real data and checkpoint) is absent")


def wordpiece(tok_cfg, corpus_cfg, cache_dir: Path):
    """A WordPiece vocabulary trained on a pretraining corpus, as a run from scratch trains it."""
    from bertkit.tasks.pretraining.task import PretrainingTask
    from bertkit.tokenizer import train_wordpiece

    return train_wordpiece(tok_cfg, PretrainingTask(corpus_cfg).training_text(cache_dir), cache_dir)


def build_data(data_cfg, tokenizer, cache_dir: Path):
    """The task of a data config, and the data it builds."""
    from bertkit.tasks.registry import task_for

    task = task_for(data_cfg)
    return task.build(tokenizer, cache_dir)


def compose_config(overrides: list[str]):
    """Compose conf/train.yaml exactly as the command line would, with these overrides."""
    config.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.fixture
def cache_dir(tmp_path_factory) -> Path:
    """One data cache for the whole session, as users share ~/.cache/bertkit between runs."""
    return tmp_path_factory.getbasetemp() / "bertkit-cache"


@pytest.fixture
def tiny_run(tmp_path, cache_dir):
    """Overrides for a 5-step tiny pretraining run writing into tmp_path/run."""

    def make(*extra: str) -> list[str]:
        defaults = {
            "trainer.max_steps": "5",
            "trainer.log_every": "1",
            "output_dir": str(tmp_path / "run"),
            "cache_dir": str(cache_dir),
        }
        chosen = {item.split("=", 1)[0] for item in extra}
        return [*TINY_OVERRIDES, *(f"{k}={v}" for k, v in defaults.items() if k not in chosen), *extra]

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny BERT checkpoint folder (BertForPreTraining weights + a WordPiece tokenizer trained on the test
    assets), standing in for bert-base-uncased in fine-tuning tests."""
    from transformers import BertConfig, BertForPreTraining

    from bertkit.settings import TokenizerConfig
    from bertkit.tasks.pretraining.config import CorpusSource, PretrainCorpusConfig

    work = tmp_path_factory.mktemp("tiny_bert")
    text = work / "text.txt"
    sentences = [field for path in sorted(GLUE_FIXTURES.rglob("*.tsv")) for field in path.read_text().split("\t")]
    text.write_text(TINY_CORPUS.read_text() + "\n\n" + "\n".join(s.strip() for s in sentences if " " in s) + "\n")
    tokenizer = wordpiece(
        TokenizerConfig(vocab_size=400, min_frequency=1),
        PretrainCorpusConfig(source=CorpusSource.sentence_files, paths=[str(text)]),
        work / "cache",
    )
    folder = work / "checkpoint"
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertForPreTraining(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def earlier_run(tmp_path):
    """A run directory holding an earlier run's results, which no failing run may touch. (No config.yaml:
    one with other settings would be refused before the input is even read; see test_checkpoint.py.)"""
    run_dir = tmp_path / "run"
    (run_dir / "model").mkdir(parents=True)
    files = {
        run_dir / "metrics.json": '{"heldout": {"mlm_accuracy": 0.5}}\n',
        run_dir / "model" / "config.json": "{}\n",
    }
    for path, text in files.items():
        path.write_text(text)
    yield run_dir
    for path, text in files.items():
        assert path.read_text() == text, f"{path} was changed by a failing run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.json", "model"]


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Accelerate keeps process-wide state; each test starts from none, as a new process would."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def logged_losses(run_dir: Path) -> list[float]:
    """The training losses a run wrote to its log.jsonl, in order."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [record["loss"] for record in records if "loss" in record]
