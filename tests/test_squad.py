"""SQuAD v1.1 / v2.0: the reader, features over strided windows, decoding logits to answers, the official
EM/F1, and whole runs on hand-written fixtures."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from bertkit import metrics, train
from bertkit.core.errors import DataError
from bertkit.readers.files import file_keys
from bertkit.readers.squad_json import ARTICLE, ID, SquadVersion, read_json, split_by_article
from bertkit.tasks.question_answering import answers
from bertkit.tasks.question_answering.answers import AnswerDecoder
from bertkit.tasks.question_answering.config import SquadDataConfig
from bertkit.tasks.question_answering.features import build_features
from bertkit.tasks.question_answering.scores import squad_v1_scores, squad_v2_scores
from bertkit.tasks.question_answering.task import QuestionAnsweringTask

from .conftest import ASSETS, SHARED, compose_config, requires_shared

SQUAD_V1 = ASSETS / "squad" / "tiny-v1.1.json"
SQUAD_V2 = ASSETS / "squad" / "tiny-v2.0.json"
SMALL_WINDOWS = ["data.max_seq_length=48", "data.doc_stride=16", "data.max_query_length=16"]


def squad_metric(version: str):
    return metrics.load("squad", version)


# ------------------------------------------------------------------------------------------- metrics


def test_v1_metric_normalization_rules_and_best_reference():
    refs = lambda qid, *texts: {"id": qid, "answers": {"text": list(texts), "answer_start": [0] * len(texts)}}  # noqa: E731
    cases = [
        ("case", "Denver Broncos", refs("case", "denver broncos"), 1, 1.0),
        ("punctuation", "Broncos!", refs("punctuation", "broncos"), 1, 1.0),
        ("articles", "the Broncos", refs("articles", "a broncos"), 1, 1.0),
        ("whitespace", "  Denver \t Broncos ", refs("whitespace", "Denver Broncos"), 1, 1.0),
        # tokens: pred {denver, broncos, team}, gold {broncos}: P=1/3, R=1, F1=0.5
        ("partial", "Denver Broncos team", refs("partial", "Broncos"), 0, 0.5),
        # max over references: EM from the second, F1=1 from it too
        ("several", "Santa Clara", refs("several", "Levi's Stadium", "Santa Clara", "California"), 1, 1.0),
        ("wrong", "Carolina", refs("wrong", "Denver"), 0, 0.0),
        # "an" is an article only as a whole word: "and" stays; F1: pred {rock, and, roll}, gold {rock, roll} = 0.8
        ("and", "rock and roll", refs("and", "rock roll"), 0, 0.8),
    ]
    references = [ref for _, _, ref, *_ in cases]
    scores = squad_v1_scores({qid: text for qid, text, *_ in cases}, references)
    predictions = [{"id": qid, "prediction_text": text} for qid, text, *_ in cases]
    assert squad_metric("v1").compute(predictions=predictions, references=references) == scores  # evaluate module
    assert scores["exact_match"] == pytest.approx(100 * 5 / 8)
    assert scores["f1"] == pytest.approx(100 * (5 + 0.5 + 0.8) / 8)


def test_v2_metric_unanswerable_questions_and_best_threshold():
    references = [
        {"id": "a", "answers": {"text": ["Denver"], "answer_start": [0]}},
        {"id": "b", "answers": {"text": ["the Panthers"], "answer_start": [0]}},
        {"id": "n1", "answers": {"text": [], "answer_start": []}},
        {"id": "n2", "answers": {"text": [], "answer_start": []}},
    ]
    predictions = [
        {"id": "a", "prediction_text": "Denver", "no_answer_probability": -2.0},  # right
        {"id": "b", "prediction_text": "Panthers team", "no_answer_probability": 1.0},  # F1 = 2/3
        {"id": "n1", "prediction_text": "", "no_answer_probability": 3.0},  # right: no answer
        {"id": "n2", "prediction_text": "Carolina", "no_answer_probability": 0.5},  # wrong
    ]
    scores = squad_v2_scores(
        {p["id"]: p["prediction_text"] for p in predictions},
        {p["id"]: p["no_answer_probability"] for p in predictions},
        references,
    )
    assert squad_metric("v2").compute(predictions=predictions, references=references) == scores  # evaluate module
    assert scores["exact"] == pytest.approx(50.0) and scores["total"] == 4
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 4)
    assert scores["HasAns_exact"] == pytest.approx(50.0) and scores["HasAns_f1"] == pytest.approx(100 * 5 / 6)
    assert scores["NoAns_exact"] == pytest.approx(50.0) and scores["NoAns_total"] == 2
    # Thresholds by hand (answer "" where null odds > t): t < -2: 2 no-answers right = 2/4; answering a (-2): 3;
    # n2 (0.5): 2; b (1.0): 2 + 2/3 (F1) or 2 (EM); n1 (3.0): predicted "" either way. Best EM: 3 at t=-2.
    assert scores["best_exact"] == pytest.approx(75.0) and scores["best_exact_thresh"] == pytest.approx(-2.0)
    assert scores["best_f1"] == pytest.approx(75.0) and scores["best_f1_thresh"] == pytest.approx(-2.0)
    thresholded = squad_metric("v2").compute(predictions=predictions, references=references, no_answer_threshold=0.0)
    assert thresholded["exact"] == pytest.approx(75.0)  # b and n2 become "": n2 right, b wrong


# -------------------------------------------------------------------------------------------- reader


def read(path, cache_dir, version=SquadVersion.v1) -> datasets.Dataset:
    return read_json(str(path), version, str(cache_dir / "datasets"), file_keys([path])[0])


def test_reader_rows_and_realigned_answer(cache_dir):
    rows = read(SQUAD_V1, cache_dir)
    assert (
        len(rows) == 8
        and rows[0][ID] == "lh1"
        and rows[0]["answer_texts"] == ["every evening at dusk", "at dusk", "evening"]
    )
    mill2 = rows[3]
    assert mill2["answer_realigned"] and mill2["context"][mill2["answer_starts"][0] :].startswith("oak")
    v2 = read(SQUAD_V2, cache_dir, SquadVersion.v2)
    assert sum(v2["is_impossible"]) == 2 and v2[2]["answer_texts"] == []


def test_v2_file_read_as_v1_says_what_to_set(cache_dir):
    with pytest.raises(DataError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[2\].*data\.version=v2"):
        read(SQUAD_V2, cache_dir)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda d: d.pop("data"), r"the top level has no 'data'"),
        (lambda d: d["data"][1].pop("paragraphs"), r"data\[1\] has no 'paragraphs'"),
        (lambda d: d["data"][2]["paragraphs"][1].pop("qas"), r"data\[2\]\.paragraphs\[1\] has no 'qas'"),
        (lambda d: d["data"][0]["paragraphs"][0].update(context="  "), r"data\[0\]\.paragraphs\[0\]\.context is empty"),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][1]["answers"][0].update(answer_start=500),
            r"qas\[1\]\.answers\[0\]\.answer_start=500 puts 'a long brass taper' outside its context",
        ),
        (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(id="lh2"), r"id 'lh2' is the id of an earlier"),
    ],
    ids=["no-data", "no-paragraphs", "no-qas", "empty-context", "offset-outside", "duplicate-id"],
)
def test_malformed_json_names_the_path_inside_the_file(tmp_path, cache_dir, mangle, message):
    document = json.loads(SQUAD_V1.read_text())
    mangle(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(DataError, match=f"{path}: .*{message}"):
        read(path, cache_dir)


def test_article_split_is_seeded_and_disjoint(cache_dir):
    rows = read(SQUAD_V1, cache_dir)
    train_part, held_out = split_by_article(rows, 0.3, seed=7)
    assert not set(train_part[ARTICLE]) & set(held_out[ARTICLE])
    assert len(train_part) + len(held_out) == len(rows) and len(set(held_out[ARTICLE])) == 1
    again = split_by_article(rows, 0.3, seed=7)[1]
    assert again[ID] == held_out[ID]


# ------------------------------------------------------------------------------------------ features


@pytest.fixture(scope="module")
def minilm_like_tokenizer(tiny_checkpoint):
    return AutoTokenizer.from_pretrained(tiny_checkpoint)


def test_long_contexts_become_windows_whose_labels_point_at_the_answer(tmp_path, minilm_like_tokenizer):
    tokenizer = minilm_like_tokenizer
    cfg = SquadDataConfig(train_file=str(SQUAD_V1), validation_file=str(SQUAD_V1), max_seq_length=48, doc_stride=16,
                          max_query_length=6)  # fmt: skip
    bundle = QuestionAnsweringTask(cfg).build(tokenizer, tmp_path)
    stats = bundle.stats["train"]
    assert stats["contexts_split_into_windows"] >= 2  # the two mill questions at least
    assert stats["features"] > stats["questions"] and stats["features_without_the_answer"] > 0
    assert stats["answers_realigned"] == 1 and stats["truncated_questions"] > 0
    labeled = set()
    rows = read(SQUAD_V1, tmp_path)
    features = build_features(rows, tokenizer, cfg, "test", training=True)
    for feature in features:
        start, end = feature["start_positions"], feature["end_positions"]
        if start == 0:
            assert end == 0
            continue
        labeled.add(feature[answers.EXAMPLE])
        answer = rows[feature[answers.EXAMPLE]]["answer_texts"][0]
        span = tokenizer.decode(feature["input_ids"][start : end + 1])
        assert span.replace(" ", "") == answer.lower().replace(" ", "")
    assert labeled == set(range(len(rows)))  # in one window at least (overlapping windows may share it)


def one_hot_logits(length: int, width: int, position: int, high: float = 10.0) -> np.ndarray:
    logits = np.full(width, -5.0, dtype=np.float32)
    logits[length:] = -100.0  # padding beyond the feature, as the loop pads
    logits[position] = high
    return logits


def test_decoder_finds_the_best_span_over_windows_and_applies_the_null_threshold(tmp_path, minilm_like_tokenizer):
    cfg = SquadDataConfig(train_file=str(SQUAD_V2), validation_file=str(SQUAD_V2), version=SquadVersion.v2,
                          max_seq_length=48, doc_stride=16, max_query_length=16)  # fmt: skip
    rows = read(SQUAD_V2, tmp_path, SquadVersion.v2)
    features = build_features(rows, minilm_like_tokenizer, cfg, "test", training=False)
    width = max(len(ids) for ids in features["input_ids"])
    starts = np.full((len(features), width), -5.0, dtype=np.float32)
    ends = starts.copy()
    targets = {}
    for index, feature in enumerate(features):
        context = [i for i, first in enumerate(feature[answers.OFFSET_STARTS]) if first >= 0]
        length = len(feature["input_ids"])
        question = rows[feature[answers.EXAMPLE]]
        if question["is_impossible"]:
            starts[index], ends[index] = one_hot_logits(length, width, 0), one_hot_logits(length, width, 0)
        else:  # every window votes for its own first two context tokens, the last window most strongly
            high = 10.0 + index
            starts[index] = one_hot_logits(length, width, context[0], high)
            ends[index] = one_hot_logits(length, width, context[1], high)
            first, last = feature[answers.OFFSET_STARTS][context[0]], feature[answers.OFFSET_ENDS][context[1]]
            targets[question[ID]] = question["context"][first:last]
    decoder = AnswerDecoder.from_features(cfg, rows, features)
    decoded = decoder.decode({"start_logits": starts, "end_logits": ends})
    assert {qid: decoded.predictions[qid] for qid in targets} == targets
    assert decoded.predictions["lh3"] == "" and decoded.predictions["f3"] == ""
    assert decoded.null_odds["lh3"] > 0 > decoded.null_odds["lh1"]
    assert len(decoded.nbest["lh1"]) <= cfg.n_best_size
    assert sum(entry["probability"] for entry in decoded.nbest["lh1"]) == pytest.approx(1.0)
    files = decoder.files(decoded)
    assert set(files) == {"predictions.json", "nbest_predictions.json", "null_odds.json"}


# ---------------------------------------------------------------------------------------- whole runs


@pytest.fixture
def squad_run(tmp_path, cache_dir, tiny_checkpoint):
    def make(version: str, *extra: str) -> list[str]:
        fixture = SQUAD_V1 if version == "v1" else SQUAD_V2
        return [
            f"+experiment=squad_{version}",
            f"model.name_or_path={tiny_checkpoint}",
            f"data.train_file={fixture}",
            f"data.validation_file={fixture}",
            *SMALL_WINDOWS,
            "trainer.max_steps=3",
            "trainer.per_device_batch_size=4",
            "trainer.progress_bar=false",
            f"output_dir={tmp_path / 'run'}",
            f"cache_dir={cache_dir}",
            *extra,
        ]

    return make


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_squad_run_scores_writes_predictions_and_a_loadable_model(squad_run, tmp_path, version):
    scores = train.run(compose_config(squad_run(version)))["validation"]
    run_dir = tmp_path / "run"
    written = json.loads((run_dir / "predictions" / "predictions.json").read_text())
    assert set(written) == set(read(SQUAD_V1 if version == "v1" else SQUAD_V2, tmp_path, SquadVersion(version))[ID])
    if version == "v1":
        assert set(scores) >= {"exact_match", "f1"} and 0 <= scores["f1"] <= 100
    else:
        assert {"HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh"} <= set(scores)
        assert (run_dir / "predictions" / "null_odds.json").is_file()
    # The metrics of the run are what the official formulas give on the predictions it wrote.
    references = read(SQUAD_V1 if version == "v1" else SQUAD_V2, tmp_path, SquadVersion(version))
    refs = [
        {"id": r[ID], "answers": {"text": r["answer_texts"], "answer_start": r["answer_starts"]}} for r in references
    ]
    if version == "v1":
        again = squad_metric("v1").compute(
            predictions=[{"id": k, "prediction_text": v} for k, v in written.items()], references=refs
        )
        assert again["f1"] == pytest.approx(scores["f1"])
    model = AutoModelForQuestionAnswering.from_pretrained(run_dir / "model")
    assert type(model).__name__ == "BertForQuestionAnswering"


def test_single_file_is_split_by_article(squad_run, tmp_path):
    overrides = [o for o in squad_run("v1") if not o.startswith("data.validation_file")]
    train.run(compose_config([*overrides, "data.split_fraction=0.3"]))
    metrics_file = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics_file["data"]["validation"]["questions"] + metrics_file["data"]["train"]["questions"] == 8


def test_missing_file_and_bad_json_leave_an_earlier_run_alone(squad_run, earlier_run, tmp_path):
    with pytest.raises(DataError, match=r"data\.train_file: '.*nowhere\.json' does not exist"):
        train.run(compose_config(squad_run("v1", f"data.train_file={tmp_path / 'nowhere.json'}")))
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [{"paragraphs": [')
    with pytest.raises(DataError, match=r"broken\.json: not valid JSON: .* line 1"):
        train.run(compose_config(squad_run("v1", f"data.train_file={broken}")))


def test_offline_without_a_file_says_what_to_set(squad_run):
    overrides = [o for o in squad_run("v1") if not o.startswith(("data.train_file", "data.validation_file"))]
    with pytest.raises(DataError, match=r"rajpurkar/squad.*data\.train_file"):
        train.run(compose_config(overrides))


@requires_shared
def test_the_shared_dev_set_reads_whole(cache_dir):
    rows = read(SHARED / "data" / "squad" / "dev-v1.1.json", cache_dir)
    assert len(rows) == 10570 and len(set(rows[ARTICLE])) == 48
    assert sum(rows["answer_realigned"]) == 0 and all(rows["answer_found"])
    train_part, held_out = split_by_article(rows, 0.2, seed=42)
    assert len(set(held_out[ARTICLE])) == 10 and not set(train_part[ARTICLE]) & set(held_out[ARTICLE])


def hub_like(path) -> datasets.DatasetDict:
    """The fixture in the Hub's rajpurkar/squad layout (answers as {text: [...], answer_start: [...]})."""
    rows = []
    for article in json.loads(path.read_text())["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = {
                    "text": [a["text"] for a in qa["answers"]],
                    "answer_start": [a["answer_start"] for a in qa["answers"]],
                }
                rows.append(
                    {
                        "id": qa["id"],
                        "title": article["title"],
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": answers,
                    }
                )
    table = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(train=table, validation=table)


def test_hub_path_reads_the_squad_layout(monkeypatch, squad_run, tmp_path):
    asked = []

    def load_dataset(name, cache_dir=None):
        asked.append(name)
        return hub_like(SQUAD_V2)

    monkeypatch.setattr("bertkit.readers.squad_json.datasets.load_dataset", load_dataset)
    overrides = [o for o in squad_run("v2") if not o.startswith(("data.train_file", "data.validation_file"))]
    train.run(compose_config(overrides))
    assert asked == ["rajpurkar/squad_v2"]
    metrics_file = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics_file["data"]["validation"]["unanswerable"] == 2 and metrics_file["validation"]["NoAns_total"] == 2
