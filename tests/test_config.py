"""Configuration: every shipped experiment composes, and bad settings fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from bertkit import config
from bertkit.config import RunConfig
from bertkit.core.errors import ConfigError
from bertkit.tasks.pretraining.config import MaskingMode, PretrainCorpusConfig

from .conftest import ROOT, compose_config

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


def test_there_are_experiments():
    assert {"pretrain_tiny", "pretrain_bert_base"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    run = config.load(compose_config([f"+experiment={experiment}"]))
    assert isinstance(run, RunConfig)
    assert run.name == experiment
    assert run.output_dir == f"outputs/{experiment}/seed{run.seed}"


def test_defaults_are_typed_dataclasses():
    run = config.load(compose_config(["data.masking.mode=static", "seed=7"]))
    assert isinstance(run.data, PretrainCorpusConfig)
    assert run.data.masking.mode is MaskingMode.static
    assert run.output_dir == "outputs/bertkit/seed7"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("trainer.learnig_rate=1e-4", "trainer.learnig_rate"),
        ("data.masking.mlm_probabilty=0.2", "data.masking.mlm_probabilty"),
        ("trainer.max_steps=ten", "trainer.max_steps"),
        ("data.source=wikipedia", "data.source"),
        ("trainer.mixed_precision=fp8", "trainer.mixed_precision"),
    ],
)
def test_typos_wrong_types_and_bad_enums_fail_naming_the_key(override, named):
    with pytest.raises(ConfigCompositionException) as error:
        compose_config([override])
    message = str(error.value) + str(error.value.__cause__)
    assert named in message


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["+trainer.foo=1"], "unknown setting trainer.foo"),
        (["+data.masking.extra=1"], "unknown setting data.masking.extra"),
        (["data.max_seq_length=1024"], "data.max_seq_length"),
        (["data.source=prose_files"], "data.paths"),
        (["data.masking.mlm_probability=1.5"], "data.masking.mlm_probability"),
        (["trainer.learning_rate=0"], "trainer.learning_rate"),
        (["trainer.layer_lr_decay=0"], "trainer.layer_lr_decay"),
        (["trainer.layer_lr_decay=1.5"], "trainer.layer_lr_decay"),
        (["model.hidden_size=100", "model.num_attention_heads=3"], "model.hidden_size"),
        (["data.source=hub"], "data.hub_name"),
    ],
)
def test_invalid_values_fail_at_load_naming_the_key(overrides, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        config.load(compose_config(overrides))


def test_experiments_do_not_restate_the_whole_config():
    """Experiments are deltas: each one overrides a few keys and says why (comments)."""
    for path in (ROOT / "conf" / "experiment").glob("*.yaml"):
        text = Path(path).read_text()
        assert text.startswith("# @package _global_"), path
        assert text.count("#") >= 3, f"{path} should explain its choices"


def test_resumable_settings_are_marked_in_the_schemas():
    """Budgets and bookkeeping may change between a run and its resumption; nothing that shapes training."""
    pretraining = config.resumable_settings(config.load(compose_config([])))
    assert pretraining == {
        "cache_dir", "data.num_proc", "trainer.eval_batch_size", "trainer.num_epochs", "trainer.max_steps",
        "trainer.max_minutes", "trainer.log_every", "trainer.eval_every", "trainer.eval_every_epoch",
        "trainer.save_every", "trainer.keep_last", "trainer.resume", "trainer.num_workers", "trainer.progress_bar",
        "trainer.early_stopping_patience", "trainer.early_stopping_threshold", "trainer.report_to",
        "trainer.push_to_hub", "trainer.hub_model_id",
    }  # fmt: skip
    fine_tuning = config.resumable_settings(config.load(compose_config(["+experiment=glue_rte"])))
    assert fine_tuning == pretraining and "trainer.learning_rate" not in fine_tuning


def test_each_pretraining_objective_gets_its_own_run_directory():
    default = config.load(compose_config(["+experiment=pretrain_tiny"]))
    assert default.name == "pretrain_tiny" and default.output_dir == "outputs/pretrain_tiny/seed42"
    sop = config.load(compose_config(["+experiment=pretrain_tiny", "data.objective=sop"]))
    assert sop.output_dir == "outputs/pretrain_tiny_sop/seed42"
