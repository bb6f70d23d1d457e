"""The pretraining objectives besides BERT's: RoBERTa's FULL-SENTENCES packing (mlm) and ALBERT's sentence-order
prediction (sop): their instances, heads, batches, scores and whole runs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForPreTraining, pipeline

from bertkit import train
from bertkit.tasks.pretraining.config import MaskingConfig, PretrainCorpusConfig
from bertkit.tasks.pretraining.documents import TokenizedDocuments
from bertkit.tasks.pretraining.heads import MaskedLMOnlyBertForMaskedLM, MaskedLMOnlyBertForSentenceOrder
from bertkit.tasks.pretraining.instances import pack
from bertkit.tasks.pretraining.masking import PretrainingCollator, VocabularyTables
from bertkit.tasks.pretraining.sop import IN_ORDER, SWAPPED, create_instances

from .conftest import compose_config
from .test_instances import as_column, origin, synthetic_documents

SEP = np.array([-1])


def sentences(documents):
    return [(d, np.array(sentence)) for d, document in enumerate(documents) for sentence in document]


def test_packing_keeps_every_token_in_order_and_marks_document_boundaries():
    documents = synthetic_documents(30, seed=3)
    contents = pack(sentences(documents), budget=61, separator=SEP)
    assert all(sum(len(piece) for piece in content) <= 61 for content in contents)
    flat = np.concatenate([piece for content in contents for piece in content])
    tokens = flat[flat != -1].tolist()
    assert tokens == [t for document in documents for sentence in document for t in sentence]
    for content in contents:  # a separator stands exactly between sentences of two documents
        joined = np.concatenate(content)
        for at in np.flatnonzero(joined == -1):
            assert origin(int(joined[at - 1]))[0] + 1 == origin(int(joined[at + 1]))[0]
    assert sum(len(c) for c in contents) / len(contents) > 3  # whole sentences, several per instance


def test_a_sentence_longer_than_an_instance_is_split_over_several():
    long, short = np.arange(25), np.arange(100, 103)
    contents = pack([(0, short), (0, long), (1, short)], budget=10, separator=SEP)
    lengths = [[len(piece) for piece in content] for content in contents]
    assert lengths == [[3], [10], [10], [5, 1, 3]]


@pytest.fixture(scope="module")
def sop_instances():
    documents = synthetic_documents(300, seed=5)
    corpus = TokenizedDocuments(as_column(documents))
    cfg = PretrainCorpusConfig(max_seq_length=64, seed=3)
    instances = []
    for index in range(len(documents)):
        tokens, bounds = corpus.document(index)
        for a_start, a_end, b_tokens, b_start, b_end, label, dropped in create_instances(
            bounds.tolist(), index, corpus, cfg, random.Random(index)
        ):
            assert b_tokens is None  # both segments from the document itself
            instances.append((tokens[a_start:a_end].tolist(), tokens[b_start:b_end].tolist(), label, dropped))
    return instances


def test_sentence_order_pairs_are_consecutive_text_swapped_half_the_time(sop_instances):
    assert len(sop_instances) > 500
    swapped = sum(label == SWAPPED for *_, label, _ in sop_instances) / len(sop_instances)
    assert abs(swapped - 0.5) < 0.05
    for a, b, label, dropped in sop_instances:
        first, second = (a, b) if label == IN_ORDER else (b, a)
        assert origin(first[0])[0] == origin(second[0])[0]  # one document
        assert first[-1] < second[0]  # the first segment ends before the second begins
        assert len(a) + len(b) <= 64 - 3 and len(a) > 0 and len(b) > 0
        if not dropped:  # untruncated: the segments meet, with nothing between them
            assert first[-1] + 1 == second[0] or origin(first[-1])[1] + 1 == origin(second[0])[1]


def test_packed_batches_are_one_segment_without_a_pair_label(tiny_checkpoint):
    tables = VocabularyTables(AutoTokenizer.from_pretrained(tiny_checkpoint))
    cls, sep = 2, 3  # where the trained vocabulary puts them
    collate = PretrainingCollator(tables, MaskingConfig(), seed=0, pair_label=None)
    batch = collate([{"input_ids": [cls, 50, 60, sep, 70, 80, sep]}, {"input_ids": [cls, 90, sep]}])
    assert (batch["token_type_ids"] == 0).all() and "next_sentence_label" not in batch
    pairs = PretrainingCollator(tables, MaskingConfig(), seed=0, pair_label="sentence_order_label")
    batch = pairs([{"input_ids": [cls, 50, 60, sep, 70, 80, sep], "sentence_order_label": 1}])
    assert batch["token_type_ids"][0, :7].tolist() == [0, 0, 0, 0, 1, 1, 1] and batch["next_sentence_label"].item() == 1


TINY = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def test_masked_only_mlm_head_gives_the_loss_and_gradients_of_the_stock_one():
    torch.manual_seed(0)
    stock, fast = BertForMaskedLM(TINY).eval(), MaskedLMOnlyBertForMaskedLM(TINY).eval()
    fast.load_state_dict(stock.state_dict())
    ids = torch.randint(5, 300, (4, 30))
    labels = torch.where(torch.rand(4, 30) < 0.2, ids, -100)
    expected, got = stock(input_ids=ids, labels=labels), fast(input_ids=ids, labels=labels)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.logits, expected.logits[labels != -100], rtol=1e-5, atol=1e-5)
    expected.loss.backward()
    got.loss.backward()
    for (name, a), (_, b) in zip(stock.named_parameters(), fast.named_parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_sentence_order_head_reports_its_own_loss():
    ids = torch.randint(5, 300, (2, 12))
    labels = torch.where(torch.rand(2, 12) < 0.3, ids, -100)
    output = MaskedLMOnlyBertForSentenceOrder(TINY)(
        input_ids=ids, labels=labels, next_sentence_label=torch.tensor([0, 1])
    )
    assert output.sop_loss is not None and output.nsp_loss is None
    torch.testing.assert_close(output.loss, output.mlm_loss + output.sop_loss)


def test_an_mlm_run_is_a_plain_masked_lm_folder(tiny_run, tmp_path):
    scores = train.run(compose_config(tiny_run("data.objective=mlm", "trainer.max_steps=3")))
    assert set(scores["heldout"]) == {
        "mlm_accuracy", "mlm_loss", "perplexity", "mlm_majority_baseline_accuracy", "mlm_predictions",
    }  # fmt: skip
    run_dir = tmp_path / "run"
    model = BertForMaskedLM.from_pretrained(run_dir / "model")
    assert json.loads((run_dir / "model" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    assert len(pipeline("fill-mask", model=model, tokenizer=str(run_dir / "model"))("the [MASK] .")) == 5
    stats = json.loads((run_dir / "metrics.json").read_text())["data"]["train"]
    assert stats["mean_instance_tokens"] > 40 and stats["truncated_tokens"] == 0  # packed near full, nothing cut
    assert "objective | mlm" in (run_dir / "model" / "README.md").read_text()


def test_a_sop_run_scores_sentence_order(tiny_run, tmp_path):
    scores = train.run(compose_config(tiny_run("data.objective=sop", "trainer.max_steps=3")))
    heldout = scores["heldout"]
    assert {"sop_accuracy", "sop_majority_baseline_accuracy", "sop_examples"} <= set(heldout)
    assert not any(name.startswith("nsp") for name in heldout)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all("sop_loss" in r and "nsp_loss" not in r for r in records if "loss" in r)
    stats = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]["train"]
    assert 0 < stats["sop_swapped_fraction"] < 1
    BertForPreTraining.from_pretrained(tmp_path / "run" / "model")
