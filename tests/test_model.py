"""The model recipe: the masked-positions-only head, checkpoints, continued pretraining."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import BertConfig, BertForPreTraining

from bertkit.core.task import TaskSpec
from bertkit.model import build_model
from bertkit.settings import ModelConfig
from bertkit.tasks.pretraining.config import PretrainCorpusConfig
from bertkit.tasks.pretraining.heads import MaskedLMOnlyBertForPreTraining
from bertkit.tasks.pretraining.task import PretrainingTask

from .conftest import SHARED, requires_shared

TINY = BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)


def batch(seed: int = 0, size: int = 6, length: int = 40) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 500, (size, length), generator=generator)
    labels = torch.where(torch.rand(size, length, generator=generator) < 0.15, input_ids, -100)
    attention_mask = torch.ones(size, length, dtype=torch.long)
    attention_mask[0, 30:] = 0
    labels[0, 30:] = -100
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": (torch.arange(length) > 20).long().expand(size, -1),
        "labels": labels,
        "next_sentence_label": torch.randint(0, 2, (size,), generator=generator),
    }


def test_masked_only_head_gives_the_same_loss_and_gradients_as_the_full_head():
    torch.manual_seed(0)
    full = BertForPreTraining(TINY).eval()
    fast = MaskedLMOnlyBertForPreTraining(TINY).eval()
    fast.load_state_dict(full.state_dict())
    inputs = batch()
    expected, got = full(**inputs), fast(**inputs)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-6)
    masked = inputs["labels"] != -100
    torch.testing.assert_close(got.prediction_logits, expected.prediction_logits[masked], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.mlm_loss + got.nsp_loss, got.loss)

    expected.loss.backward()
    got.loss.backward()
    for (name, a), (_, b) in zip(full.named_parameters(), fast.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_batch_without_masked_tokens_has_zero_mlm_loss():
    model = MaskedLMOnlyBertForPreTraining(TINY)
    inputs = batch()
    inputs["labels"].fill_(-100)
    output = model(**inputs)
    assert output.mlm_loss.item() == 0.0 and torch.isfinite(output.loss)


def test_without_labels_the_model_scores_every_position():
    output = MaskedLMOnlyBertForPreTraining(TINY)(**{k: v for k, v in batch().items() if k == "input_ids"})
    assert output.prediction_logits.shape == (6, 40, 500)


def test_scratch_model_follows_the_task_and_preset():
    task, spec = PretrainingTask(PretrainCorpusConfig()), TaskSpec(vocab_size=321, pad_token_id=0, max_seq_length=128)
    settings = ModelConfig(hidden_size=64, num_attention_heads=4, intermediate_size=128)
    model = build_model(settings, spec, task.head(settings)).model
    assert isinstance(model, MaskedLMOnlyBertForPreTraining)
    assert model.config.vocab_size == 321 and model.config.hidden_size == 64
    plain = build_model(
        ModelConfig(masked_positions_only=False), spec, task.head(ModelConfig(masked_positions_only=False))
    ).model
    assert type(plain) is BertForPreTraining


@pytest.mark.shared_data
@requires_shared
def test_continued_pretraining_from_minilm_says_the_heads_are_new(caplog):
    checkpoint = SHARED / "models" / "all-MiniLM-L6-v2"
    spec = TaskSpec(vocab_size=30522, pad_token_id=0, max_seq_length=128)
    settings = ModelConfig(name_or_path=str(checkpoint))
    with caplog.at_level(logging.WARNING, logger="bertkit.model"):
        model = build_model(settings, spec, PretrainingTask(PretrainCorpusConfig()).head(settings)).model
    assert "has no weights for cls.predictions, cls.seq_relationship" in caplog.text
    assert model.config.num_hidden_layers == 6 and model.dtype == torch.float32
    reference = BertForPreTraining.from_pretrained(checkpoint).bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(model.bert.embeddings.word_embeddings.weight, reference)
