"""Long documents: windows instead of truncation, trained on every window (or the first N), combined per document
by the mean or the maximum of their logits; counts in metrics.json; predict reads documents the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from bertkit import cli, train
from bertkit.core.errors import ConfigError, DataError
from bertkit.tasks.classification import windows
from bertkit.tasks.classification.custom import CustomDataConfig
from bertkit.tasks.classification.task import TEXT, TEXT_PAIR

from .conftest import SHARED, compose_config, requires_shared
from .test_hostile_runs import WORDS, ft


def test_a_long_text_becomes_overlapping_windows_of_its_document(tiny_checkpoint):
    import datasets

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    rows = datasets.Dataset.from_dict({TEXT: [" ".join(WORDS * 3), "short one"], "label": [1, 0]})
    encoded = windows.encode(rows, tokenizer, max_seq_length=12, stride=3, key="k")
    assert encoded[windows.DOCUMENT][-1] == 1 and set(encoded[windows.DOCUMENT]) == {0, 1}
    first_document = [w for d, w in zip(encoded[windows.DOCUMENT], encoded[windows.WINDOW], strict=True) if d == 0]
    assert first_document == list(range(len(first_document))) and len(first_document) > 2
    assert all(len(ids) <= 12 for ids in encoded["input_ids"]) and set(encoded["labels"][:-1]) == {1}
    assert len(windows.first_windows(encoded, 2)) == 3  # two windows of the long document, the short one's
    stats = windows.stats(encoded)
    assert (stats["documents"], stats["windows"], stats["documents_split_into_windows"]) == (2, len(encoded), 1)
    pairs = datasets.Dataset.from_dict({TEXT: ["a"], TEXT_PAIR: ["b"]})
    with pytest.raises(DataError, match=r"long_inputs=windows reads one text per example"):
        windows.encode(pairs, tokenizer, 12, 3, "k")


def test_windows_combine_by_mean_or_max_of_their_logits():
    gathered = {"logits": np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]]), "labels": np.array([1, 1, 0])}
    documents = np.array([0, 0, 1])
    mean = windows.per_document(gathered, documents, windows.WindowAggregation.mean)
    assert mean["logits"].tolist() == [[2.0, 1.0], [0.0, 5.0]] and mean["labels"].tolist() == [1, 0]
    most = windows.per_document(gathered, documents, windows.WindowAggregation.max)
    assert most["logits"].tolist() == [[3.0, 2.0], [0.0, 5.0]]


def test_settings_are_checked():
    with pytest.raises(ConfigError, match=r"data.window_stride"):
        CustomDataConfig(train_file="x.csv", max_seq_length=16, window_stride=8, long_inputs="windows")
    CustomDataConfig(train_file="x.csv", max_seq_length=16, window_stride=8)  # truncating: the stride is unused
    with pytest.raises(ConfigError, match=r"data.max_windows_per_document"):
        CustomDataConfig(train_file="x.csv", max_windows_per_document=0)


@pytest.mark.parametrize("aggregation", ["mean", "max"])
def test_a_windowed_run_predicts_documents_and_predict_reads_them_the_same(ft, tmp_path, aggregation):
    lines = ["text,label"] + [f"{' '.join(WORDS[i % 10 :] + WORDS * (1 + i % 3))},{'ab'[i % 2]}" for i in range(30)]
    data = tmp_path / "docs.csv"
    data.write_text("\n".join(lines) + "\n")
    texts = tmp_path / "texts.csv"
    texts.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in lines))
    overrides = ft(data, f"data.test_file={texts}", "data.max_seq_length=16", "data.window_stride=4",
                   "data.long_inputs=windows", f"data.window_aggregation={aggregation}",
                   "data.max_windows_per_document=3")  # fmt: skip
    train.run(compose_config(overrides))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    train_stats, test_stats = metrics["data"]["train"], metrics["data"]["test"]
    assert test_stats["documents"] == 30 and test_stats["windows"] > 30 and test_stats["tokens_in_later_windows"] > 0
    assert train_stats["windows_trained_on"] <= 3 * train_stats["documents"] < train_stats["windows"]
    written = (tmp_path / "run" / "predictions" / "test.tsv").read_text()
    assert len(written.splitlines()) == 31  # a row per document
    out = tmp_path / "out.tsv"
    assert cli.main(["predict", str(tmp_path / "run" / "model"), str(texts), "--output", str(out),
                     "--batch-size", "16"]) == 0  # fmt: skip
    assert out.read_text() == written


@requires_shared
def test_bbc_news_repeated_texts_are_left_out_before_the_split(cache_dir):
    from bertkit.tasks.classification.custom import read_splits

    cfg = CustomDataConfig(train_file=str(SHARED / "data" / "bbc_news" / "bbc_news_train.csv"), text_column="Text",
                           label_column="Category", drop_duplicates=True)  # fmt: skip
    splits, labels = read_splits(cfg, str(cache_dir))
    assert splits.repeated_rows == {"train": 50} and len(labels.names) == 5
    train, validation = splits.train[TEXT], splits.evaluation["validation"][TEXT]
    assert len(train) + len(validation) == 1440 and not set(train) & set(validation)
