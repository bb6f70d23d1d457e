"""Multi-label classification of your own data: label sets in one column, as a JSON list or one 0/1 column per
label, ids named by a file, headerless files; scores by hand; the threshold tuned and recorded; whole runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertkit import cli, train
from bertkit.core.errors import DataError
from bertkit.tasks.classification import multi_label
from bertkit.tasks.classification.custom import CustomDataConfig, read_splits

from .conftest import compose_config

WORDS = ["red", "green", "blue", "sky", "grass", "fire", "cold", "warm", "sea", "leaf"]


def rows(count: int = 40) -> list[tuple[str, list[str]]]:
    """Texts whose words decide their labels: sky/sea -> blue, grass/leaf -> green, fire/warm -> red."""
    colour = {"sky": "blue", "sea": "blue", "grass": "green", "leaf": "green", "fire": "red", "warm": "red"}
    out = []
    for i in range(count):
        words = [WORDS[(3 * i) % 10], WORDS[(7 * i + 2) % 10]]
        out.append((" ".join(words), sorted({colour[w] for w in words if w in colour})))
    return out


def read(cfg: CustomDataConfig, cache_dir):
    return read_splits(cfg, str(cache_dir))


def test_a_separated_column_is_detected_and_rows_without_labels_are_kept(tmp_path, cache_dir):
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f'{t},"{",".join(ls)}"\n' for t, ls in rows()))
    splits, labels = read(CustomDataConfig(train_file=str(path)), cache_dir)
    assert labels.multi_label and labels.names == ("blue", "green", "red")
    vectors = np.asarray(list(splits.train["label"]) + list(splits.evaluation["validation"]["label"]))
    assert vectors.shape == (40, 3) and (vectors.sum(axis=1) == 0).any()  # some rows have no label


def test_json_lists_zero_one_columns_and_ids_named_by_a_file_give_the_same_sets(tmp_path, cache_dir):
    data = rows(12)
    lists = tmp_path / "lists.jsonl"
    lists.write_text("".join(json.dumps({"text": t, "label": ls}) + "\n" for t, ls in data))
    columns = tmp_path / "columns.csv"
    columns.write_text("text,blue,green,red\n" + "".join(
        f"{t},{int('blue' in ls)},{int('green' in ls)},{int('red' in ls)}\n" for t, ls in data))  # fmt: skip
    names = tmp_path / "names.txt"
    names.write_text("blue\ngreen\nred\n")
    ids = tmp_path / "ids.tsv"  # no header: text, ids, comment id (GoEmotions' layout)
    ids.write_text("".join(f"{t}\t{','.join(str(['blue', 'green', 'red'].index(x)) for x in ls)}\tc{i}\n"
                           for i, (t, ls) in enumerate(data)))  # fmt: skip
    found = []
    for cfg in (
        CustomDataConfig(train_file=str(lists), validation_file=str(lists)),
        CustomDataConfig(train_file=str(columns), validation_file=str(columns), label_columns=["blue", "green", "red"]),
        CustomDataConfig(
            train_file=str(ids),
            validation_file=str(ids),
            column_names=["text", "ids", "id"],
            label_column="ids",
            label_kind="multi_label",
            label_names_file=str(names),
        ),  # fmt: skip
    ):
        splits, labels = read(cfg, cache_dir)
        assert labels.names == ("blue", "green", "red") and labels.multi_label
        found.append(list(splits.train["label"]))
    assert found[0] == found[1] == found[2]


def test_an_unknown_label_or_id_names_the_row(tmp_path, cache_dir):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    ids = tmp_path / "ids.tsv"
    ids.write_text("one\t0\nTwo\t0,5\n")
    cfg = CustomDataConfig(train_file=str(ids), validation_file=str(ids), column_names=["text", "label"],
                           label_kind="multi_label", label_names_file=str(names))  # fmt: skip
    with pytest.raises(DataError, match=r"ids.tsv: line 3 has label '5'; the known ids 0..1"):
        read(cfg, cache_dir)


def test_scores_by_hand_and_the_tuned_threshold():
    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=float)
    guess = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    found = multi_label.scores(guess, gold, ("a", "b", "c"))
    # micro: tp 4, fp 1, fn 1 -> P = R = F1 = 0.8; per label F1: a 1, b 1, c 0 -> macro 2/3; 2 of 4 rows exact
    assert found["f1_micro"] == pytest.approx(0.8) and found["precision_micro"] == pytest.approx(0.8)
    assert found["f1_macro"] == pytest.approx(2 / 3) and found["f1_c"] == 0.0
    assert found["subset_accuracy"] == 0.5
    probabilities = np.array([[0.9, 0.2, 0.35], [0.1, 0.8, 0.2], [0.7, 0.6, 0.1], [0.2, 0.1, 0.3]])
    assert multi_label.best_threshold(probabilities, gold) == 0.35  # the lowest threshold that takes row 0's c


@pytest.fixture
def multi_run(tmp_path, cache_dir, tiny_checkpoint):
    train_file = tmp_path / "train.csv"
    train_file.write_text("text,label\n" + "".join(f'{t},"{",".join(ls)}"\n' for t, ls in rows(60)))
    texts = tmp_path / "texts.csv"
    texts.write_text("text\n" + "".join(f"{t}\n" for t, _ in rows(20)))

    def make(*extra: str) -> list[str]:
        return ["data=custom", "model=pretrained", "trainer=finetune", f"model.name_or_path={tiny_checkpoint}",
                f"data.train_file={train_file}", f"data.test_file={texts}", "trainer.max_steps=6",
                "trainer.per_device_batch_size=8", "trainer.eval_batch_size=16", "trainer.eval_every_epoch=false",
                "trainer.progress_bar=false", f"output_dir={tmp_path / 'run'}", f"cache_dir={cache_dir}",
                *extra]  # fmt: skip

    return make


def test_a_run_scores_label_sets_records_the_tuned_threshold_and_predict_reads_it(multi_run, tmp_path):
    scores = train.run(compose_config(multi_run("data.threshold=null")))
    validation = scores["validation"]
    assert {"f1_micro", "f1_macro", "precision_micro", "recall_macro", "subset_accuracy", "f1_blue"} <= set(validation)
    model = tmp_path / "run" / "model"
    config = json.loads((model / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    recorded = config["task_specific_params"]["bertkit"]["data"]["threshold"]
    assert recorded in multi_label.THRESHOLDS  # tuned on validation, not the null that was configured
    predictions = tmp_path / "run" / "predictions" / "test.tsv"
    header = predictions.read_text().splitlines()[0].split("\t")
    assert header == ["index", "prediction", "prob_blue", "prob_green", "prob_red"]
    out = tmp_path / "out.tsv"
    assert (
        cli.main(["predict", str(model), str(tmp_path / "texts.csv"), "--output", str(out), "--batch-size", "16"]) == 0
    )
    assert out.read_text() == predictions.read_text()
    assert cli.main(["predict", str(model), str(tmp_path / "texts.csv"), "--output", str(tmp_path / "o.jsonl")]) == 0
    record = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])
    chosen = [name for name, p in record["probabilities"].items() if p >= recorded]
    assert record["prediction"] == chosen
