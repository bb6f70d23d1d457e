"""Multiple choice: the three layouts of choices, answers as index, letter or text, malformed rows, contexts cut
from the start, whole runs on hand-written files, and OpenBookQA through its preset."""

from __future__ import annotations

import csv
import json

import pytest
from transformers import AutoModelForMultipleChoice, AutoTokenizer

from bertkit import train
from bertkit.core.errors import DataError
from bertkit.tasks.fine_tuning import BadRows
from bertkit.tasks.multiple_choice import (
    CHOICE_LABELS,
    CHOICES,
    CONTEXT,
    LABEL,
    QUESTION,
    MultipleChoiceDataConfig,
    encode,
    read_splits,
)

from .conftest import SHARED, compose_config, requires_shared

SWAG = [
    ("The keeper climbed the tower.", "He", ["lit the lamp.", "ate the moon.", "sang to fish.", "became a tree."], 0),
    ("The ship came into the harbour.", "It", ["flew away.", "dropped anchor.", "melted.", "read a book."], 1),
    ("The storm grew stronger.", "The waves", ["froze.", "whispered.", "rose higher.", "went home."], 2),
    ("The sun set over the hills.", "The sky", ["sang.", "cooked rice.", "slept late.", "turned red."], 3),
] * 3


def swag_csv(path, rows=SWAG):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sent1", "sent2", "ending0", "ending1", "ending2", "ending3", "label"])
        for context, start, endings, label in rows:
            writer.writerow([context, start, *endings, label])
    return path


def swag_config(train_file, **settings) -> MultipleChoiceDataConfig:
    swag = {"context_column": "sent1", "question_column": "sent2", "choice_columns": [f"ending{i}" for i in range(4)]}
    return MultipleChoiceDataConfig(train_file=str(train_file), **(swag | settings))


def test_swag_layout_one_column_per_choice(tmp_path, cache_dir):
    data = swag_csv(tmp_path / "train.csv")
    splits, skipped, _ = read_splits(swag_config(data, validation_file=str(data)), str(cache_dir))
    first = splits["validation"][0]
    assert (first[CONTEXT], first[QUESTION], first[LABEL]) == ("The keeper climbed the tower.", "He", 0)
    assert first[CHOICES][1] == "ate the moon." and first[CHOICE_LABELS] == ["A", "B", "C", "D"]
    assert len(splits["train"]) == 12 and skipped == {}


def test_a_headerless_file_takes_its_column_names_from_the_setting(tmp_path, cache_dir):
    data = swag_csv(tmp_path / "train.csv")
    header, *lines = data.read_text().splitlines()
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("\n".join(lines) + "\n")
    named = swag_config(headerless, validation_file=str(headerless), column_names=header.split(","))
    with_header = read_splits(swag_config(data, validation_file=str(data)), str(cache_dir))[0]
    without = read_splits(named, str(cache_dir))[0]
    assert without["validation"].to_list() == with_header["validation"].to_list()


def test_without_a_validation_file_a_seeded_share_is_held_out(tmp_path, cache_dir):
    data = swag_csv(tmp_path / "train.csv")
    splits, _, _ = read_splits(swag_config(data, validation_fraction=0.25), str(cache_dir))
    again, _, _ = read_splits(swag_config(data, validation_fraction=0.25), str(cache_dir))
    assert (len(splits["train"]), len(splits["validation"])) == (9, 3)
    assert splits["validation"][QUESTION] == again["validation"][QUESTION]


def test_json_lists_and_answers_as_index_letter_or_text(tmp_path, cache_dir):
    records = [
        {"id": "q1", "question": "Plants need sunlight to", "options": ["make food", "sleep", "sing"], "answer": 0},
        {"id": "q2", "question": "Ice is", "options": ["hot", "frozen water", "a gas"], "answer": "B"},
        {"id": "q3", "question": "Fish live in", "options": ["trees", "deserts", "water"], "answer": "water"},
        {"id": "q4", "question": "The moon orbits", "options": ["the earth", "a cat", "a cloud"], "answer": "0"},
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    cfg = MultipleChoiceDataConfig(
        train_file=str(path), validation_file=str(path), id_column="id", question_column="question",
        choices_column="options", answer_column="answer",
    )  # fmt: skip
    splits, _, _ = read_splits(cfg, str(cache_dir))
    assert splits["train"][LABEL] == [0, 1, 2, 0]
    assert splits["train"]["id"] == ["q1", "q2", "q3", "q4"]


def test_nested_json_objects_with_labelled_choices(tmp_path, cache_dir):
    """ARC and OpenBookQA's JSONL: {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}."""
    record = {"id": "7-1", "question": {"stem": "Which is a liquid?", "choices": [
        {"text": "rock", "label": "1"}, {"text": "water", "label": "2"}, {"text": "wood", "label": "3"}]},
        "answerKey": "2"}  # fmt: skip
    path = tmp_path / "arc.jsonl"
    path.write_text((json.dumps(record) + "\n") * 4)
    cfg = MultipleChoiceDataConfig(train_file=str(path), validation_file=str(path), question_column="question.stem",
                                   choices_column="question.choices", answer_column="answerKey")  # fmt: skip
    splits, _, _ = read_splits(cfg, str(cache_dir))
    row = splits["train"][0]
    assert (row[QUESTION], row[CHOICES], row[CHOICE_LABELS], row[LABEL]) == (
        "Which is a liquid?", ["rock", "water", "wood"], ["1", "2", "3"], 1,
    )  # fmt: skip


def obqa_tsv(path, rows):
    lines = ["ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key"]
    lines += [f"{qid}\t{stem}\t{choices}\t{stem} {choices}\t{answer}" for qid, stem, choices, answer in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


OBQA_ROWS = [
    ("1-1", "The sun is responsible for", "(A) puppies (B) plants sprouting (C) rocks (D) snow", "B"),
    ("1-2", "A learned behavior", "(A) crawling (B) clapping for fish (C) sitting (D) worms (D) nursing", "B"),
    ("1-3", "Water boils at", "(A) 100 degrees (B) 5 degrees (C) 0 degrees (D) 20 degrees", "A"),
] * 2


def obqa_config(path, **settings) -> MultipleChoiceDataConfig:
    return MultipleChoiceDataConfig(
        train_file=str(path), validation_file=str(path), id_column="ID", question_column="Question Stem",
        choices_column="Choices", answer_column="Answer Key", **settings,
    )  # fmt: skip


def test_lettered_options_packed_in_one_column(tmp_path, cache_dir):
    path = obqa_tsv(tmp_path / "train.tsv", [OBQA_ROWS[0], OBQA_ROWS[2]])
    splits, _, _ = read_splits(obqa_config(path), str(cache_dir))
    assert splits["train"][CHOICES][0] == ["puppies", "plants sprouting", "rocks", "snow"]
    assert splits["train"][LABEL] == [1, 0]


def test_a_repeated_option_letter_names_file_and_line_or_is_skipped_and_counted(tmp_path, cache_dir):
    path = obqa_tsv(tmp_path / "train.tsv", OBQA_ROWS)
    with pytest.raises(DataError, match=r"train\.tsv: line 3: the options are lettered A, B, C, D, D.*bad_rows=skip"):
        read_splits(obqa_config(path), str(cache_dir))
    splits, skipped, _ = read_splits(obqa_config(path, bad_rows=BadRows.skip), str(cache_dir))
    assert len(splits["train"]) == 4 and skipped == {"train": 2, "validation": 2}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("1-1", "Q", "(A) a (B) b", "E")], r"line 2: the answer 'E' .* points past the 2 choices"),
        ([("1-1", "Q", "a, b or c", "A")], r"line 2: 'a, b or c' is not lettered options"),
        ([("1-1", "Q", "(A) a (B) b", "maybe")], r"line 2: the answer 'maybe' .* is no choice's index, label or text"),
    ],
)
def test_unreadable_rows_name_file_and_line(tmp_path, cache_dir, rows, message):
    with pytest.raises(DataError, match=message):
        read_splits(obqa_config(obqa_tsv(tmp_path / "train.tsv", rows)), str(cache_dir))


def test_every_question_needs_the_same_number_of_choices(tmp_path, cache_dir):
    rows = [("1-1", "Q", "(A) a (B) b (C) c", "A"), ("1-2", "R", "(A) a (B) b", "B")]
    with pytest.raises(DataError, match=r"question 1-2 has 2 choices where the first training question has 3"):
        read_splits(obqa_config(obqa_tsv(tmp_path / "train.tsv", rows)), str(cache_dir))


def test_missing_column_and_missing_file(tmp_path, cache_dir):
    data = swag_csv(tmp_path / "train.csv")
    with pytest.raises(DataError, match=r"no column 'ending9' \(data\.choice_columns\[1\]\); the columns are"):
        read_splits(swag_config(data, choice_columns=["ending0", "ending9"]), str(cache_dir))
    with pytest.raises(DataError, match=r"data\.validation_file: '.*nothing\.csv' does not exist"):
        read_splits(swag_config(data, validation_file=str(tmp_path / "nothing.csv")), str(cache_dir))


def test_hub_offline_says_which_settings_read_files(cache_dir):
    with pytest.raises(DataError, match=r"could not load allenai/swag from the Hub.*data\.train_file"):
        read_splits(MultipleChoiceDataConfig(choice_columns=["ending0", "ending1"]), str(cache_dir))


def test_a_long_context_is_cut_from_its_start_and_counted(tmp_path, cache_dir, tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    long_context = "the keeper climbed the tower and the storm grew and the waves rose " * 6 + "at last ."
    rows = [(long_context, "He", ["lit the lamp .", "ate .", "sang .", "slept ."], 0)] * 2
    cfg = swag_config(swag_csv(tmp_path / "train.csv", rows), validation_file=str(tmp_path / "train.csv"),
                      max_seq_length=24)  # fmt: skip
    splits, _, _ = read_splits(cfg, str(cache_dir))
    encoded = encode(splits["train"], tokenizer, cfg, "test")
    first_choice = encoded[0]["input_ids"][0]
    assert len(first_choice) == 24 and encoded[0]["truncated_tokens"] > 0
    text = tokenizer.decode(first_choice)
    assert "at last" in text and text.endswith("he lit the lamp. [SEP]")  # the context's end, question, choice


@pytest.fixture
def mc_run(tmp_path, cache_dir, tiny_checkpoint):
    data = swag_csv(tmp_path / "train.csv")

    def make(*extra: str) -> list[str]:
        return [
            "+experiment=multiple_choice", f"model.name_or_path={tiny_checkpoint}", f"data.train_file={data}",
            f"data.validation_file={data}", "trainer.max_steps=4", "trainer.per_device_batch_size=4",
            "trainer.eval_batch_size=8", "trainer.progress_bar=false", f"output_dir={tmp_path / 'run'}",
            f"cache_dir={cache_dir}", *extra,
        ]  # fmt: skip

    return make


def test_a_run_scores_accuracy_and_names_the_chosen_options(mc_run, tmp_path):
    scores = train.run(compose_config(mc_run(f"data.test_file={tmp_path / 'train.csv'}")))
    assert 0.0 <= scores["validation"]["accuracy"] <= 1.0 and scores["validation"]["examples"] == 12
    assert scores["test"]["examples"] == 12  # a test file with answers is scored once, at the end
    run_dir = tmp_path / "run"
    header, first, *_ = (run_dir / "predictions" / "validation.tsv").read_text().splitlines()
    assert header.split("\t") == ["id", "prediction", "choice", "answer", "correct"]
    qid, letter, choice, answer, correct = first.split("\t")
    assert letter in "ABCD" and choice in SWAG[0][2] and answer == "A" and correct == str(letter == "A").lower()
    model = AutoModelForMultipleChoice.from_pretrained(run_dir / "model")
    assert type(model).__name__ == "BertForMultipleChoice"
    card = (run_dir / "model" / "README.md").read_text()
    assert "pipeline_tag: multiple-choice" in card and "AutoModelForMultipleChoice" in card
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["train"]["choices"] == 4 and metrics["data"]["train"]["questions"] == 12


@pytest.mark.slow
@pytest.mark.shared_data
@requires_shared
def test_openbookqa_preset_needs_no_other_setting(tmp_path, cache_dir):
    """`+experiment=openbookqa model.name_or_path=... data.train_file=... data.validation_file=...` as the README
    says: OpenBookQA's TSV columns, its one malformed training row left out and counted."""
    obqa = SHARED / "data" / "openbookqa"
    overrides = ["+experiment=openbookqa", f"model.name_or_path={SHARED / 'models' / 'all-MiniLM-L6-v2'}",
                 f"data.train_file={obqa / 'train.tsv'}", f"data.validation_file={obqa / 'dev.tsv'}",
                 "trainer.max_steps=2", "data.max_eval_samples=32", "trainer.progress_bar=false",
                 f"output_dir={tmp_path / 'run'}", f"cache_dir={cache_dir}"]  # fmt: skip
    train.run(compose_config(overrides))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["train"]["questions"] == 4956 and metrics["data"]["train"]["skipped_malformed_rows"] == 1
    assert metrics["data"]["train"]["answer_counts"] == {"0": 1378, "1": 1211, "2": 1146, "3": 1221}
    assert metrics["data"]["validation"]["truncated_questions"] == 0 and metrics["validation"]["examples"] == 32
    first = (tmp_path / "run" / "predictions" / "validation.tsv").read_text().splitlines()[1].split("\t")
    assert first[0] == "8-376" and first[3] == "A"  # dev.tsv's first question, its answer A
