"""The modern pretraining recipe: a warmup-stable-decay schedule, bf16 where native, and the preset that
puts them together with masked-LM-only training at 30% masking on packed batches."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from bertkit import train
from bertkit.core.errors import ConfigError, ModelError
from bertkit.settings import MixedPrecision, SchedulerKind, TrainerConfig
from bertkit.training import accelerator as accelerator_module
from bertkit.training.optim import build_scheduler

from .conftest import TINY_OVERRIDES, compose_config


def test_wsd_warms_up_holds_then_decays_to_zero_over_the_last_steps():
    cfg = TrainerConfig(learning_rate=1.0, lr_scheduler=SchedulerKind.wsd, warmup_steps=10, decay_ratio=0.2)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, cfg, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0 and rates[5] == pytest.approx(0.5)
    assert all(rate == pytest.approx(1.0) for rate in rates[10:80])  # stable
    decay = rates[80:]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False)) and decay[-1] < 0.25
    # 1 - sqrt: the rate falls slowly at first; halfway through the decay it is 1 - sqrt(0.5)
    assert rates[90] == pytest.approx(1 - 0.5**0.5, abs=0.01)


def test_wsd_whose_warmup_and_decay_do_not_fit_is_refused():
    cfg = TrainerConfig(lr_scheduler=SchedulerKind.wsd, warmup_ratio=0.5, decay_ratio=0.6)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match=r"50 warmup and 60 decay steps .* do not fit the 100 training steps"):
        build_scheduler(optimizer, cfg, total_steps=100)


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [(True, False, "bf16"), (False, True, "bf16"),
                                                            (False, False, "no")])  # fmt: skip
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert accelerator_module.resolved_precision(MixedPrecision.auto, torch.device("cpu")) == expected
    assert accelerator_module.resolved_precision(MixedPrecision.no, torch.device("cpu")) == "no"


def test_the_modern_preset_trains_a_masked_lm_on_packed_batches(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    train.run(compose_config(["+experiment=pretrain_modern", *TINY_OVERRIDES, "trainer.max_steps=4",
                              f"cache_dir={cache_dir}", f"output_dir={run_dir}"]))  # fmt: skip
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "mlm_accuracy" in metrics["heldout"] and "nsp_accuracy" not in metrics["heldout"]
    recorded = (run_dir / "config.yaml").read_text()
    for setting in ("packing: true", "mlm_probability: 0.3", "lr_scheduler: wsd", "decay_ratio: 0.2"):
        assert setting in recorded
    assert json.loads((run_dir / "model" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    resolved = accelerator_module.resolved_precision(MixedPrecision.auto, torch.device("cpu"))
    assert metrics["throughput"]["mixed_precision"] == resolved  # what auto became, not "auto"
    assert f"| mixed precision | {resolved} |" in (run_dir / "model" / "README.md").read_text()


def test_a_modernbert_from_scratch_pretrains_on_packed_batches_into_a_plain_folder(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    train.run(compose_config(["+experiment=pretrain_modern", "model=modernbert_tiny", *TINY_OVERRIDES,
                              "trainer.max_steps=4", f"cache_dir={cache_dir}", f"output_dir={run_dir}"]))  # fmt: skip
    assert json.loads((run_dir / "metrics.json").read_text())["heldout"]["mlm_predictions"] > 0
    model = AutoModelForMaskedLM.from_pretrained(run_dir / "model")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    assert type(model).__name__ == "ModernBertForMaskedLM" and model.config.sparse_prediction
    assert (model.config.cls_token_id, model.config.sep_token_id) == (tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert "token_type_ids" not in tokenizer.model_input_names


def test_the_bert_and_modernbert_modern_runs_get_their_own_folders():
    names = [compose_config(["+experiment=pretrain_modern", *model]).name for model in ([], ["model=modernbert_tiny"])]
    assert names == ["pretrain_modern", "pretrain_modern_modernbert"]


def test_a_modernbert_with_a_sentence_pair_objective_is_refused(tmp_path, cache_dir):
    with pytest.raises(ModelError, match=r"architecture=modernbert: this task trains a BERT \(data.objective=mlm"):
        train.run(compose_config(["+experiment=pretrain_tiny", "model=modernbert_tiny", *TINY_OVERRIDES,
                                  f"cache_dir={cache_dir}", f"output_dir={tmp_path / 'run'}"]))  # fmt: skip
    assert not (tmp_path / "run").exists()
