"""Your own data (data=custom): CSV/TSV/JSON/JSONL/parquet, single texts or pairs, classification or regression."""

from __future__ import annotations

import json

import pandas
import pytest
from transformers import AutoModelForSequenceClassification

from bertkit import train
from bertkit.core.errors import DataError

from .conftest import compose_config

REVIEWS = [
    ("The soup was warm and full of flavour .", "good"),
    ("Service was slow and the bread was stale .", "bad"),
    ("A friendly waiter and a quiet table by the window .", "good"),
    ("The fish tasted of nothing at all .", "bad"),
    ("Cold coffee , rude staff , never again .", "bad"),
    ("Lovely desserts and fair prices .", "good"),
    ("We waited an hour for a salad .", "bad"),
    ("The best pasta in the old town .", "good"),
    ("Portions were small but delicious .", "mixed"),
    ("Great view , average food .", "mixed"),
] * 3


@pytest.fixture
def custom_run(tmp_path, cache_dir, tiny_checkpoint):
    def make(*extra: str) -> list[str]:
        return [
            "data=custom",
            "model=pretrained",
            f"model.name_or_path={tiny_checkpoint}",
            "trainer=smoke",
            "trainer.max_steps=2",
            "trainer.save_every=null",
            "trainer.per_device_batch_size=4",
            f"output_dir={tmp_path / 'run'}",
            f"cache_dir={cache_dir}",
            *extra,
        ]

    return make


def write_csv(path, rows, columns=("review", "verdict")):
    pandas.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_csv_classification_with_a_seeded_validation_split(custom_run, tmp_path):
    train_file = write_csv(tmp_path / "reviews.csv", REVIEWS)
    overrides = custom_run(f"data.train_file={train_file}", "data.text_column=review", "data.label_column=verdict")
    scores = train.run(compose_config(overrides))
    assert {"accuracy", "f1_macro", "matthews_correlation"} <= set(scores["validation"])

    run_dir = tmp_path / "run"
    stats = json.loads((run_dir / "metrics.json").read_text())["data"]
    assert stats["train"]["examples"] + stats["validation"]["examples"] == len(REVIEWS)
    assert stats["validation"]["examples"] == 3  # data.validation_fraction=0.1
    assert stats["validation"]["label_counts"] == {"bad": 1, "good": 1, "mixed": 1}  # stratified
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "model")
    assert model.config.id2label == {0: "bad", 1: "good", 2: "mixed"}  # the training file's labels, sorted
    lines = (run_dir / "predictions" / "validation.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction\tprob_bad\tprob_good\tprob_mixed\tlabel" and len(lines) == 4
    for line in lines[1:]:  # the predicted label is the most probable one, and the probabilities sum to 1
        index, predicted, *probabilities, label = line.split("\t")
        ranked = sorted(zip(map(float, probabilities), ["bad", "good", "mixed"], strict=True))
        assert predicted == ranked[-1][1] and abs(sum(p for p, _ in ranked) - 1) < 1e-5


def test_jsonl_pairs_with_validation_and_test_files(custom_run, tmp_path):
    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path

    rows = [{"claim": text, "evidence": text[::-1], "agrees": i % 2 == 0} for i, (text, _) in enumerate(REVIEWS)]
    train_file = write("train.jsonl", rows[:20])
    validation_file = write("dev.jsonl", rows[20:])
    test_file = write("test.jsonl", [{k: v for k, v in row.items() if k != "agrees"} for row in rows[:5]])
    overrides = custom_run(
        f"data.train_file={train_file}",
        f"data.validation_file={validation_file}",
        f"data.test_file={test_file}",
        "data.text_column=claim",
        "data.text_pair_column=evidence",
        "data.label_column=agrees",
    )
    train.run(compose_config(overrides))
    run_dir = tmp_path / "run"
    test_lines = (run_dir / "predictions" / "test.tsv").read_text().splitlines()
    assert test_lines[0] == "index\tprediction\tprob_False\tprob_True" and len(test_lines) == 6
    assert {line.split("\t")[1] for line in test_lines[1:]} <= {"False", "True"}
    stats = json.loads((run_dir / "metrics.json").read_text())["data"]
    assert stats["validation"]["examples"] == 10 and stats["test"]["examples"] == 5


def test_parquet_with_float_labels_is_regression(custom_run, tmp_path):
    frame = pandas.DataFrame(
        {"sentence": [text for text, _ in REVIEWS], "stars": [float(i % 5) + 0.5 for i in range(len(REVIEWS))]}
    )
    train_file = tmp_path / "stars.parquet"
    frame.to_parquet(train_file)
    overrides = custom_run(f"data.train_file={train_file}", "data.text_column=sentence", "data.label_column=stars")
    scores = train.run(compose_config(overrides))
    assert {"pearson", "spearmanr", "mse"} <= set(scores["validation"])
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"


def fails(overrides, pattern):
    with pytest.raises(DataError, match=pattern) as error:
        train.run(compose_config(overrides))
    assert "\n" not in str(error.value)


def test_missing_column_lists_the_columns(custom_run, earlier_run, tmp_path):
    train_file = write_csv(tmp_path / "reviews.csv", REVIEWS)
    pattern = r"reviews\.csv: no column 'text' \(data\.text_column\); the columns are \['review', 'verdict'\]"
    fails(custom_run(f"data.train_file={train_file}", "data.label_column=verdict"), pattern)


def test_validation_label_unseen_in_training_names_file_and_line(custom_run, earlier_run, tmp_path):
    train_file = write_csv(tmp_path / "train.csv", REVIEWS)
    dev_file = write_csv(tmp_path / "dev.csv", [*REVIEWS[:3], ("Odd one out .", "awful")])
    overrides = custom_run(
        f"data.train_file={train_file}",
        f"data.validation_file={dev_file}",
        "data.text_column=review",
        "data.label_column=verdict",
    )
    fails(overrides, r"dev\.csv: line 5 has label 'awful', which the training file .* does not have")


def test_missing_file_and_single_label(custom_run, earlier_run, tmp_path):
    fails(custom_run(f"data.train_file={tmp_path / 'none.csv'}"), r"data\.train_file: '.*none\.csv' does not exist")
    single = write_csv(tmp_path / "single.csv", [(text, "good") for text, _ in REVIEWS])
    overrides = custom_run(f"data.train_file={single}", "data.text_column=review", "data.label_column=verdict")
    fails(overrides, r"single\.csv: column 'verdict' has a single label \('good'\)")


@pytest.mark.parametrize("suffix", [".tsv", ".json"])
def test_tsv_and_json_arrays_are_read_too(custom_run, tmp_path, suffix):
    train_file = tmp_path / f"reviews{suffix}"
    frame = pandas.DataFrame(REVIEWS, columns=["review", "verdict"])
    if suffix == ".tsv":
        frame.to_csv(train_file, sep="\t", index=False)
    else:
        train_file.write_text(json.dumps(frame.to_dict(orient="records")))
    overrides = custom_run(f"data.train_file={train_file}", "data.text_column=review", "data.label_column=verdict")
    scores = train.run(compose_config(overrides))
    assert scores["validation"]["examples"] == 3
