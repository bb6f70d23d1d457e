"""GLUE: every task runs from the original TSV layout, is scored by its official metric, and writes
predictions in the GLUE server's format; bad files stop with the file and line."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest
from transformers import AutoModelForSequenceClassification

from bertkit import config, train
from bertkit.core.errors import DataError, ModelError
from bertkit.readers.glue_tsv import INDEX, LABEL, TEXT, TEXT_PAIR
from bertkit.tasks.classification.glue import TASKS, GlueClassification, GlueDataConfig, GlueTask, read_tsv_layout

from .conftest import GLUE_FIXTURES, SHARED, compose_config, requires_shared

METRICS = {
    "cola": {"matthews_correlation"},
    "stsb": {"pearson", "spearmanr"},
    "mrpc": {"accuracy", "f1"},
    "qqp": {"accuracy", "f1"},
}
SUBMISSIONS = {
    "cola": ["CoLA.tsv"],
    "sst2": ["SST-2.tsv"],
    "mrpc": ["MRPC.tsv"],
    "stsb": ["STS-B.tsv"],
    "qqp": ["QQP.tsv"],
    "mnli": ["AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv"],
    "qnli": ["QNLI.tsv"],
    "rte": ["RTE.tsv"],
    "wnli": ["WNLI.tsv"],
}


@pytest.fixture
def glue_run(tmp_path, cache_dir, tiny_checkpoint):
    """Overrides for a 2-step fine-tuning run of a GLUE experiment on the fixtures, from the tiny checkpoint."""

    def make(task: str, *extra: str, glue_dir=GLUE_FIXTURES) -> list[str]:
        return [
            f"+experiment=glue_{task}",
            f"model.name_or_path={tiny_checkpoint}",
            f"data.glue_dir={glue_dir}",
            "trainer.max_steps=2",
            "trainer.per_device_batch_size=4",
            "trainer.eval_batch_size=8",
            "trainer.log_every=1",
            "trainer.progress_bar=false",
            f"output_dir={tmp_path / 'run'}",
            f"cache_dir={cache_dir}",
            *extra,
        ]

    return make


@pytest.mark.parametrize("task", [str(t) for t in GlueTask])
def test_every_glue_task_trains_scores_and_writes_submissions(task, glue_run, tmp_path):
    scores = train.run(compose_config(glue_run(task)))
    info = TASKS[GlueTask(task)]
    assert set(scores) == set(info.evaluation)  # MNLI: matched and mismatched
    for split in info.evaluation:
        assert METRICS.get(task, {"accuracy"}) <= set(scores[split])
        assert scores[split]["examples"] == 8

    run_dir = tmp_path / "run"
    predictions = run_dir / "predictions"
    assert sorted(p.name for p in predictions.glob("*.tsv") if p.stem[0].isupper()) == SUBMISSIONS[task]
    for name in SUBMISSIONS[task]:
        lines = (predictions / name).read_text().splitlines()
        assert lines[0] == "index\tprediction"
        assert len(lines) == 1 + (5 if name == "AX.tsv" else 6)
        allowed = info.label_values or None
        for line in lines[1:]:
            value = line.split("\t")[1]
            assert value in allowed if allowed else 0.0 <= float(value) <= 5.0
    for split in info.evaluation:  # dev predictions (with each class's probability) beside their labels
        header = (predictions / f"{split}.tsv").read_text().splitlines()[0].split("\t")
        probabilities = [f"prob_{name}" for name in info.labels.names]
        assert header == ["index", "prediction", *probabilities, "label"]

    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "model")
    assert model.config.num_labels == max(1, len(info.label_values))
    assert list(model.config.id2label.values()) == list(info.labels.names or ["score"])
    card = (run_dir / "model" / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "## Evaluation" in card
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["train"]["examples"] == 16


def test_tsv_layout_quirks(cache_dir):
    """CoLA has no header in train/dev, MRPC starts with a byte-order mark, quotes are plain characters."""
    cola = read_tsv_layout(
        GlueDataConfig(task=GlueTask.cola, glue_dir=str(GLUE_FIXTURES)), TASKS["cola"], str(cache_dir)
    )
    assert len(cola.train) == 16 and cola.train[1][TEXT] == "A gardener trims the hedges every spring ."
    assert cola.train[0][LABEL] == 0 and cola.train[1][LABEL] == 1
    assert cola.prediction["test"][0][INDEX] == "0" and LABEL not in cola.prediction["test"].column_names

    mrpc = read_tsv_layout(
        GlueDataConfig(task=GlueTask.mrpc, glue_dir=str(GLUE_FIXTURES)), TASKS["mrpc"], str(cache_dir)
    )
    quoted = [row[TEXT] for row in mrpc.train if '"' in row[TEXT]]
    assert quoted == ['The mayor said " we will rebuild " after the flood .']
    assert mrpc.train[0][TEXT_PAIR] == "A ferry departs from the port at midday ."

    mnli = read_tsv_layout(
        GlueDataConfig(task=GlueTask.mnli, glue_dir=str(GLUE_FIXTURES)), TASKS["mnli"], str(cache_dir)
    )
    assert set(mnli.evaluation) == {"validation_matched", "validation_mismatched"}
    assert set(mnli.prediction) == {"test_matched", "test_mismatched", "diagnostic"}
    assert mnli.train[2][LABEL] == TASKS["mnli"].label_values.index("contradiction")

    stsb = read_tsv_layout(
        GlueDataConfig(task=GlueTask.stsb, glue_dir=str(GLUE_FIXTURES)), TASKS["stsb"], str(cache_dir)
    )
    assert isinstance(stsb.train[0][LABEL], float) and 0.0 <= stsb.train[0][LABEL] <= 5.0


def test_each_epoch_is_evaluated(glue_run, tmp_path):
    # 16 training rows at batch 4: 4 optimizer steps an epoch.
    train.run(compose_config(glue_run("rte", "trainer.max_steps=null", "trainer.num_epochs=2")))
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval" in r] == [4, 8]


def test_truncation_is_counted(glue_run, tmp_path):
    train.run(compose_config(glue_run("mrpc", "data.max_seq_length=12")))
    stats = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    assert stats["train"]["truncated_examples"] == 16 and stats["train"]["truncated_tokens"] > 0
    assert stats["train"]["mean_tokens"] == 12.0


# ----------------------------------------------------------------------------------------------- bad input


def copy_task(tmp_path, folder: str):
    target = tmp_path / "glue" / folder
    shutil.copytree(GLUE_FIXTURES / folder, target)
    return target


def fails(overrides, error_type, pattern):
    with pytest.raises(error_type, match=pattern) as error:
        train.run(compose_config(overrides))
    assert "\n" not in str(error.value), "the message must be a single line"


def test_missing_task_folder(glue_run, earlier_run, tmp_path):
    (tmp_path / "empty").mkdir()
    fails(glue_run("rte", glue_dir=tmp_path / "empty"), DataError, r"GLUE rte: folder .*/RTE does not exist")


def test_missing_split(glue_run, earlier_run, tmp_path):
    folder = copy_task(tmp_path, "RTE")
    (folder / "dev.tsv").unlink()
    fails(glue_run("rte", glue_dir=folder.parent), DataError, r"RTE/dev\.tsv does not exist \(the validation split")


def test_row_with_wrong_number_of_fields_names_file_and_line(glue_run, earlier_run, tmp_path):
    folder = copy_task(tmp_path, "RTE")
    with (folder / "train.tsv").open("a") as handle:
        handle.write("16\tA premise here .\tA hypothesis .\textra field\tentailment\n")
    pattern = r"RTE/train\.tsv: line 18 has 5 fields where the header has 4 \(data\.bad_rows=skip"
    fails(glue_run("rte", glue_dir=folder.parent), DataError, pattern)


def test_rows_with_wrong_number_of_fields_can_be_skipped(glue_run, tmp_path):
    folder = copy_task(tmp_path, "RTE")
    with (folder / "train.tsv").open("a") as handle:
        handle.write("16\tonly two fields\n")
    train.run(compose_config(glue_run("rte", "data.bad_rows=skip", glue_dir=folder.parent)))
    stats = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    assert stats["train"]["examples"] == 16 and stats["train"]["skipped_malformed_rows"] == 1


def test_label_outside_the_task_label_set(glue_run, earlier_run, tmp_path):
    folder = copy_task(tmp_path, "RTE")
    with (folder / "dev.tsv").open("a") as handle:
        handle.write("8\tA premise .\tA hypothesis .\tmaybe\n")
    pattern = r"RTE/dev\.tsv: line 10: label 'maybe' is not one of \['entailment', 'not_entailment'\]"
    fails(glue_run("rte", glue_dir=folder.parent), DataError, pattern)


def test_stsb_score_that_is_not_a_number(glue_run, earlier_run, tmp_path):
    folder = copy_task(tmp_path, "STS-B")
    with (folder / "train.tsv").open("a") as handle:
        handle.write("16\tmain-news\theadlines\t2015\t0016\tnone\tnone\tA cat .\tA dog .\tfive\n")
    fails(glue_run("stsb", glue_dir=folder.parent), DataError, r"STS-B/train\.tsv: line 18: the score 'five'")


def test_checkpoint_vocabulary_smaller_than_the_tokenizer(glue_run, earlier_run, tmp_path, tiny_checkpoint):
    from transformers import BertConfig, BertForPreTraining

    small = tmp_path / "small_vocab"
    BertForPreTraining(
        BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(small)
    overrides = glue_run("rte", f"model.name_or_path={small}", f"tokenizer.name_or_path={tiny_checkpoint}")
    fails(overrides, ModelError, r"the tokenizer has \d+ tokens but model\.name_or_path=.* embeds only 50")


def test_offline_without_glue_dir_says_what_to_set(glue_run, earlier_run):
    overrides = [o for o in glue_run("mrpc") if not o.startswith("data.glue_dir")]
    fails(overrides, DataError, r"could not load GLUE mrpc from the Hub .*data\.glue_dir .*GLUE_DIR=")


def test_offline_hub_model_names_the_setting(glue_run, earlier_run):
    overrides = glue_run("mrpc", "model.name_or_path=bert-base-uncased")
    pattern = r"model\.name_or_path='bert-base-uncased': .*offline\? point it at a local checkpoint folder"
    fails(overrides, ModelError, pattern)


def test_glue_task_is_required():
    with pytest.raises(Exception, match=r"data\.task"):
        config.load(compose_config(["data=glue", "model=pretrained", "model.name_or_path=x"]))


# ----------------------------------------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.shared_data
@requires_shared
def test_mrpc_from_the_shared_minilm_checkpoint(tmp_path, cache_dir):
    overrides = [
        "+experiment=glue_mrpc",
        f"model.name_or_path={SHARED / 'models' / 'all-MiniLM-L6-v2'}",
        f"data.glue_dir={SHARED / 'data' / 'glue_data'}",
        "data.max_eval_samples=96",
        "trainer.max_steps=4",
        "trainer.per_device_batch_size=8",
        "trainer.progress_bar=false",
        f"output_dir={tmp_path / 'run'}",
        f"cache_dir={cache_dir}",
    ]
    scores = train.run(compose_config(overrides))
    assert scores["validation"]["examples"] == 96 and 0.0 <= scores["validation"]["f1"] <= 1.0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["train"]["examples"] == 3668  # every row of the real train.tsv, BOM and all
    submission = (tmp_path / "run" / "predictions" / "MRPC.tsv").read_text().splitlines()
    assert len(submission) == 1 + 96 and submission[1].split("\t")[0] == "0"


@pytest.mark.slow
def test_task_all_runs_the_tasks_present_and_writes_one_summary(tmp_path, cache_dir, tiny_checkpoint, monkeypatch):
    """What `make finetune-glue TASK=all` runs: one accelerate launch per task whose files are there."""
    from bertkit import glue_suite

    glue_dir = tmp_path / "glue"
    for folder in ("CoLA", "STS-B"):
        shutil.copytree(GLUE_FIXTURES / folder, glue_dir / folder)
    (glue_dir / "RTE").mkdir()  # a task folder without its files is skipped, not failed
    monkeypatch.setenv("BERTKIT_CACHE", str(cache_dir))
    code = glue_suite.main(
        [
            "--model", str(tiny_checkpoint),
            "--glue-dir", str(glue_dir),
            "--output", str(tmp_path / "summary"),
            "--",
            "trainer.max_steps=2",
            "trainer.per_device_batch_size=4",
            "trainer.progress_bar=false",
            f"output_dir={tmp_path}/runs/${{data.task}}",
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "summary" / "glue_summary.json").read_text())
    rows = {row["task"]: row for row in summary["tasks"]}
    assert rows["cola"]["status"] == "ok" and "matthews_correlation" in rows["cola"]["validation"]
    assert rows["stsb"]["status"] == "ok" and set(rows["stsb"]["validation"]) == {"pearson", "spearmanr"}
    assert rows["rte"]["status"].startswith("skipped: no train/dev files")
    assert sum(row["status"].startswith("skipped") for row in rows.values()) == 7
    assert summary["average"]["tasks"] == ["cola", "stsb"]
    table = (tmp_path / "summary" / "glue_summary.md").read_text()
    assert "| cola | validation | matthews_correlation" in table and "Average over 2 task(s)" in table
    assert (tmp_path / "runs" / "cola" / "metrics.json").is_file()
    assert summary["model"] == str(tiny_checkpoint)  # what the runs' config.yaml says they trained
    assert f"# GLUE dev scores: {tiny_checkpoint}" in table

    # Runs that fail show no score, not the one an earlier run left in their folder.
    output_dir = f"output_dir={tmp_path}/runs/${{data.task}}"
    arguments = ["--model", str(tiny_checkpoint), "--glue-dir", str(glue_dir), "--output", str(tmp_path / "failed"),
                 "--tasks", "cola", "--launch", "false", "--", output_dir]  # fmt: skip
    assert glue_suite.main(arguments) == 1
    (failed,) = json.loads((tmp_path / "failed" / "glue_summary.json").read_text())["tasks"]
    assert failed["status"] == "failed (exit 1)" and "validation" not in failed


def hub_like(task: str, label_names: list[str] | None) -> datasets.DatasetDict:
    """What datasets.load_dataset("nyu-mll/glue", task) returns, in miniature (ClassLabel ids, idx, -1 on test)."""
    columns = TASKS[GlueTask(task)].hub_columns if task != "ax" else ("premise", "hypothesis")
    label = datasets.ClassLabel(names=label_names) if label_names else datasets.Value("float32")

    def split(n: int, labeled: bool) -> datasets.Dataset:
        rows = {name: [f"{name} number {i} ." for i in range(n)] for name in columns}
        rows["label"] = [(i % len(label_names) if label_names else i % 5 * 1.0) if labeled else -1 for i in range(n)]
        rows["idx"] = list(range(n))
        return datasets.Dataset.from_dict(
            rows,
            features=datasets.Features(
                {**dict.fromkeys(columns, datasets.Value("string")), "label": label, "idx": datasets.Value("int32")}
            ),
        )

    info = TASKS[GlueTask(task)] if task != "ax" else TASKS[GlueTask.mnli]
    names = {"train": True, **dict.fromkeys(info.evaluation, True), **dict.fromkeys(info.test, False)}
    if task == "ax":
        names = {"test": False}
    return datasets.DatasetDict({name: split(6, labeled) for name, labeled in names.items()})


def test_hub_path_maps_class_labels_by_name(monkeypatch, cache_dir, tiny_checkpoint):
    """Online, GLUE comes from nyu-mll/glue; its ClassLabel ids are mapped to the task table's order by name."""
    from transformers import AutoTokenizer

    from bertkit.tasks.classification import glue

    shuffled = ["contradiction", "entailment", "neutral"]  # not the table's order
    calls = []

    def load_dataset(name, config_name, cache_dir=None):
        calls.append((name, config_name))
        return hub_like(config_name, None if config_name == "stsb" else shuffled)

    monkeypatch.setattr(glue.datasets, "load_dataset", load_dataset)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    bundle = GlueClassification(GlueDataConfig(task=GlueTask.mnli)).build(tokenizer, cache_dir)
    assert calls == [("nyu-mll/glue", "mnli"), ("nyu-mll/glue", "ax")]
    assert set(bundle.evaluation) == {"validation_matched", "validation_mismatched"}
    assert set(bundle.prediction) == {"test_matched", "test_mismatched", "diagnostic"}
    table_order = TASKS[GlueTask.mnli].label_values
    expected = [table_order.index(shuffled[i % 3]) for i in range(6)]
    assert bundle.train["labels"] == expected
    assert "labels" not in bundle.prediction["test_matched"].column_names

    stsb_task = GlueClassification(GlueDataConfig(task=GlueTask.stsb))
    stsb = stsb_task.build(tokenizer, cache_dir)
    assert stsb_task.labels.is_regression and stsb.train["labels"][:3] == [0.0, 1.0, 2.0]
