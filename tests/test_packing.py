"""Packed batches: several sequences per row, attention confined to each, the loss of the padded batch."""

from __future__ import annotations

import copy
import itertools
import random

import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertForTokenClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ModernBertConfig,
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
)

from bertkit import train
from bertkit.core.errors import ModelError
from bertkit.packing import Layout, best_fit_rows, enable_packing, row_length_for
from bertkit.tasks.pretraining.heads import MaskedLMOnlyBertForPreTraining

from .conftest import GLUE_FIXTURES, TINY_OVERRIDES, compose_config, logged_losses

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
NO_DROPOUT_OVERRIDES = ["model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0"]


def test_best_fit_puts_every_sequence_once_in_rows_that_fit():
    rng = random.Random(0)
    for _ in range(200):
        capacity = rng.randint(8, 64)
        lengths = [rng.randint(1, capacity) for _ in range(rng.randint(1, 40))]
        rows = best_fit_rows(lengths, capacity)
        assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
        assert all(sum(lengths[i] for i in row) <= capacity for row in rows)
        # No two rows could have been one: a row opens only for a sequence that no earlier row had room for.
        loads = [sum(lengths[i] for i in row) for row in rows]
        assert all(a + b > capacity for a, b in itertools.combinations(loads, 2))


def test_best_fit_chooses_the_tightest_row():
    # 6 opens row 0 (room 4), 5 opens row 1 (room 5); 4 fits both and fills row 0; 3 goes to row 1.
    assert best_fit_rows([3, 6, 4, 5], capacity=10) == [[1, 2], [3, 0]]


def test_the_row_length_is_the_cheapest_from_the_batch_length_up():
    # Pairs of 60 share rows of 120 (5 rows) where rows of the batch's 104 hold one each (9 rows).
    assert row_length_for([60] * 8 + [100], batch_length=104, longest_row=128, hidden_size=384) == 120
    # Nothing to gain: one sequence fills the batch.
    assert row_length_for([128], batch_length=128, longest_row=128, hidden_size=384) == 128
    for lengths in ([5] * 32, [30, 12, 7, 40, 9]):
        chosen = row_length_for(lengths, batch_length=40, longest_row=128, hidden_size=384)
        assert 40 <= chosen <= 128 and (chosen - 40) % 8 == 0


def test_pack_then_unpack_restores_the_real_tokens():
    lengths = torch.tensor([6, 2, 5, 1])
    mask = (torch.arange(6) < lengths[:, None]).long()
    layout = Layout.of(mask)
    hidden = torch.randn(4, 6, 3)
    packed = layout.pack(hidden)
    assert packed.shape[0] < 4  # fewer rows than sequences
    assert layout.sequence_ids.max() > 1  # some row holds more than one sequence
    restored = layout.unpack(packed)
    assert torch.equal(restored * mask[..., None], hidden * mask[..., None])
    assert torch.equal(restored[mask == 0], torch.zeros_like(restored[mask == 0]))
    # positions restart with every sequence of a row
    for row in range(packed.shape[0]):
        ids, positions = layout.sequence_ids[row], layout.position_ids[row]
        for number in ids[ids > 0].unique():
            assert positions[ids == number].tolist() == list(range(int((ids == number).sum())))


def test_a_left_padded_batch_is_refused():
    with pytest.raises(ModelError, match="right-padded"):
        Layout.of(torch.tensor([[0, 1, 1], [1, 1, 1]]))


def batch_for(model, batch: int = 6, length: int = 20, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (batch,), generator=generator)
    lengths[0] = length  # one full row, so the padded length is `length`
    mask = (torch.arange(length) < lengths[:, None]).long()
    ids = torch.randint(5, 100, (batch, length), generator=generator) * mask
    types = (torch.arange(length) >= lengths[:, None] // 2).long() * mask
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if isinstance(model, (BertForSequenceClassification, ModernBertForSequenceClassification)):
        inputs["labels"] = torch.randint(0, 3, (batch,), generator=generator)
    elif isinstance(model, BertForTokenClassification):
        inputs["labels"] = torch.where(mask.bool(), torch.randint(0, 3, (batch, length), generator=generator), -100)
    else:
        masked = mask.bool() & (torch.rand(batch, length, generator=generator) < 0.3)
        inputs["labels"] = torch.where(masked, ids, -100)
        inputs["next_sentence_label"] = torch.randint(0, 2, (batch,), generator=generator)
    return inputs


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize(
    "model_class", [MaskedLMOnlyBertForPreTraining, BertForSequenceClassification, BertForTokenClassification]
)
def test_the_packed_loss_and_gradients_equal_the_padded_ones(model_class, attention):
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=3, attn_implementation=attention, **NO_DROPOUT)  # fmt: skip
    torch.manual_seed(0)
    padded = model_class(config)
    packed = copy.deepcopy(padded)
    enable_packing(packed)
    for seed in range(3):
        inputs = batch_for(padded, seed=seed)
        expected, got = padded(**inputs), packed(**inputs)
        assert abs(expected.loss.item() - got.loss.item()) < 1e-5
        expected.loss.backward()
        got.loss.backward()
    for (name, a), b in zip(padded.named_parameters(), packed.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_multiple_choice_packs_every_choice_of_every_question():
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, **NO_DROPOUT)  # fmt: skip
    torch.manual_seed(0)
    padded = BertForMultipleChoice(config)
    packed = copy.deepcopy(padded)
    enable_packing(packed)
    flat = batch_for(padded, batch=8)
    inputs = {key: flat[key].view(2, 4, -1) for key in ("input_ids", "attention_mask", "token_type_ids")}
    inputs["labels"] = torch.tensor([1, 3])
    assert abs(padded(**inputs).loss.item() - packed(**inputs).loss.item()) < 1e-5


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("model_class", [ModernBertForMaskedLM, ModernBertForSequenceClassification])
def test_modernbert_packs_with_its_global_and_local_attention(model_class, attention):
    """Rotary positions restart with each sequence; the local layers' 8-token window is narrower than the
    sequences, so it matters, and must stay inside each."""
    config = ModernBertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                              intermediate_size=48, max_position_embeddings=64, local_attention=8, num_labels=3,
                              pad_token_id=0, cls_token_id=1, sep_token_id=2, bos_token_id=1, eos_token_id=2,
                              sparse_prediction=True, attn_implementation=attention)  # fmt: skip
    torch.manual_seed(0)
    padded = model_class(config)
    packed = copy.deepcopy(padded)
    enable_packing(packed, longest_row=32)
    for seed in range(3):
        inputs = batch_for(padded, seed=seed)
        del inputs["token_type_ids"]
        if model_class is ModernBertForMaskedLM:
            del inputs["next_sentence_label"]
        expected, got = padded(**inputs), packed(**inputs)
        assert abs(expected.loss.item() - got.loss.item()) < 1e-5
        expected.loss.backward()
        got.loss.backward()
    for (name, a), b in zip(padded.named_parameters(), packed.parameters(), strict=True):
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name
    # The token embeddings are looked up on the padded layout: adversarial training perturbs them per example.
    seen = []
    packed.get_input_embeddings().register_forward_hook(lambda _, __, out: seen.append(out.shape))
    packed(**inputs)
    assert seen == [(*inputs["input_ids"].shape, config.hidden_size)]


def test_hidden_states_come_back_in_the_padded_layout():
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, **NO_DROPOUT)  # fmt: skip
    padded = BertForSequenceClassification(config)
    packed = copy.deepcopy(padded)
    enable_packing(packed)
    inputs = batch_for(padded)
    real = inputs["attention_mask"][..., None]
    expected = padded(**inputs, output_hidden_states=True).hidden_states
    got = packed(**inputs, output_hidden_states=True).hidden_states
    assert len(expected) == len(got) == 3
    for a, b in zip(expected, got, strict=True):
        assert torch.allclose(a * real, b * real, atol=1e-5)


@pytest.mark.parametrize(
    "model",
    [
        lambda: DistilBertForSequenceClassification(DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2)),
        # embeddings, encoder and pooler as BERT has, but a pooler of another kind
        lambda: AlbertForSequenceClassification(AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=32,
                                                             num_attention_heads=2, intermediate_size=64)),
    ],
    ids=["distilbert", "albert"],
)  # fmt: skip
def test_an_encoder_packing_does_not_support_is_refused(model):
    with pytest.raises(ModelError, match=r"data.packing=true: .* is not one of the encoders packing supports"):
        enable_packing(model())


def test_packed_pretraining_follows_the_padded_loss_curve(tmp_path, cache_dir):
    settings = [*TINY_OVERRIDES, *NO_DROPOUT_OVERRIDES, "data.dupe_factor=2", "trainer.max_steps=6",
                "trainer.log_every=1", f"cache_dir={cache_dir}"]  # fmt: skip
    for name, packing in (("padded", "false"), ("packed", "true")):
        train.run(compose_config([*settings, f"data.packing={packing}", f"output_dir={tmp_path / name}"]))
    padded, packed = logged_losses(tmp_path / "padded"), logged_losses(tmp_path / "packed")
    assert len(padded) == len(packed) == 6
    assert max(abs(a - b) for a, b in zip(padded, packed, strict=True)) < 1e-4, (padded, packed)


def test_packed_fine_tuning_scores_as_padded(tmp_path, cache_dir, tiny_checkpoint):
    settings = ["+experiment=glue_mrpc", f"data.glue_dir={GLUE_FIXTURES}", f"model.name_or_path={tiny_checkpoint}",
                "trainer.max_steps=4", "trainer.per_device_batch_size=4", "trainer.progress_bar=false",
                *NO_DROPOUT_OVERRIDES, f"cache_dir={cache_dir}"]  # fmt: skip
    scores = {
        packing: train.run(compose_config([*settings, f"data.packing={packing}", f"output_dir={tmp_path / packing}"]))
        for packing in ("false", "true")
    }
    for metric, value in scores["false"]["validation"].items():
        assert value == pytest.approx(scores["true"]["validation"][metric], abs=1e-6), metric
