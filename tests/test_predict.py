"""`bertkit predict`: on the file a run predicted, each task's output equals the file training wrote; JSON Lines
records carry what a user needs (probabilities, entity spans, answer offsets, top-k tokens); bad input is one
line and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import BertForSequenceClassification, pipeline

from bertkit import cli, train

from .conftest import GLUE_FIXTURES, compose_config
from .test_glue import glue_run
from .test_hostile_runs import ft, write_csv
from .test_multiple_choice import mc_run, swag_csv
from .test_ner import CONLL, ner_run
from .test_squad import SQUAD_V1, squad_run


def bertkit_predict(*args: object) -> int:
    return cli.main(["predict", *map(str, args)])


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_classification_equals_training_on_csv_and_reads_one_text_per_line(ft, tmp_path, capsys):
    data = write_csv(tmp_path / "train.csv", ["neg", "pos"], rows=40)
    texts_only = tmp_path / "texts_only.csv"
    texts_only.write_text("".join(line.split(",")[0] + "\n" for line in data.read_text().splitlines()))
    train.run(compose_config(ft(data, f"data.validation_file={data}", f"data.test_file={texts_only}")))
    model = tmp_path / "run" / "model"
    recipe = json.loads((model / "config.json").read_text())["task_specific_params"]["bertkit"]
    assert recipe["schema"] == "custom_schema" and recipe["data"]["text_column"] == "text"
    assert "train_file" not in recipe["data"] and "max_eval_samples" not in recipe["data"]  # no paths, no limits
    predictions = tmp_path / "run" / "predictions"
    assert bertkit_predict(model, texts_only, "--output", tmp_path / "out.tsv", "--batch-size", 16) == 0
    assert (tmp_path / "out.tsv").read_text() == (predictions / "test.tsv").read_text()
    assert "Predicted 40 examples" in capsys.readouterr().err
    # A file with labels keeps them beside the predictions, as training's validation file does.
    assert bertkit_predict(model, data, "--output", tmp_path / "gold.tsv", "--batch-size", 16) == 0
    assert (tmp_path / "gold.tsv").read_text() == (predictions / "validation.tsv").read_text()

    assert bertkit_predict(model, data, "--output", tmp_path / "out.jsonl", "--batch-size", 16) == 0
    from_csv = records(tmp_path / "out.jsonl")
    assert set(from_csv[0]) == {"index", "text", "prediction", "probabilities", "label"}
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in from_csv)
    texts = [r["text"] for r in from_csv]
    assert bertkit_predict(model, data, "--output", tmp_path / "sorted.jsonl", "--sort-by-length") == 0
    for record, again in zip(from_csv, records(tmp_path / "sorted.jsonl"), strict=True):
        assert (again["index"], again["prediction"]) == (record["index"], record["prediction"])
        assert again["probabilities"] == pytest.approx(record["probabilities"], abs=1e-5)
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(texts[:10]) + "\n\n")  # a trailing blank line is no text
    assert bertkit_predict(model, lines, "--output", tmp_path / "lines.jsonl") == 0
    from_lines = records(tmp_path / "lines.jsonl")
    assert [r["index"] for r in from_lines] == [str(n) for n in range(1, 11)]  # line numbers
    assert [r["prediction"] for r in from_lines] == [r["prediction"] for r in from_csv[:10]]

    # The transformers pipeline on the folder agrees (no bertkit needed to use the model).
    scores = pipeline("text-classification", model=str(model), top_k=None)(texts[:5])
    for record, ranked in zip(from_csv, scores, strict=False):
        assert max(ranked, key=lambda s: s["score"])["label"] == record["prediction"]
        for entry in ranked:
            assert entry["score"] == pytest.approx(record["probabilities"][entry["label"]], abs=1e-5)


@pytest.mark.parametrize("task", ["mrpc", "stsb"])
def test_glue_models_read_glue_files_dev_with_its_labels_test_without(glue_run, tmp_path, task):
    train.run(compose_config(glue_run(task)))
    model, folder = tmp_path / "run" / "model", GLUE_FIXTURES / {"mrpc": "MRPC", "stsb": "STS-B"}[task]
    written = tmp_path / "run" / "predictions"
    for split, name in (("validation", "dev.tsv"), ("test", "test.tsv")):
        assert bertkit_predict(model, folder / name, "--output", tmp_path / name, "--batch-size", 8) == 0
        assert (tmp_path / name).read_text() == (written / f"{split}.tsv").read_text()


def test_a_checkpoint_without_a_record_uses_its_heads_defaults_and_data_settings_override(tmp_path, tiny_checkpoint):
    folder = tmp_path / "plain"
    BertForSequenceClassification.from_pretrained(tiny_checkpoint, num_labels=3).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tiny_checkpoint / name).is_file():
            shutil.copy(tiny_checkpoint / name, folder / name)
    data = write_csv(tmp_path / "texts.csv", ["x"], rows=6, header="sentence,label")
    assert bertkit_predict(folder, data, "data.text_column=sentence", "--output", tmp_path / "out.jsonl") == 0
    out = records(tmp_path / "out.jsonl")
    assert len(out) == 6 and set(out[0]["probabilities"]) == {"LABEL_0", "LABEL_1", "LABEL_2"}


def test_token_classification_equals_training_on_conll_and_tags_raw_text_with_entity_spans(ner_run, tmp_path):
    train.run(compose_config(ner_run("trainer.eval_batch_size=8")))
    model = tmp_path / "run" / "model"
    test = CONLL / "test.txt"
    assert bertkit_predict(model, test, "--output", tmp_path / "out.txt", "--batch-size", 8) == 0
    assert (tmp_path / "out.txt").read_text() == (tmp_path / "run" / "predictions" / "test.txt").read_text()

    assert bertkit_predict(model, test, "--output", tmp_path / "conll.jsonl", "--batch-size", 8) == 0
    tagged = records(tmp_path / "conll.jsonl")
    raw = tmp_path / "raw.txt"  # the same sentences as text: the tokenizer splits them into the same words
    raw.write_text("\n".join(r["text"] for r in tagged) + "\n")
    assert bertkit_predict(model, raw, "--output", tmp_path / "raw.jsonl", "--batch-size", 8) == 0
    untagged = records(tmp_path / "raw.jsonl")
    assert [r["words"] for r in untagged] == [r["words"] for r in tagged]
    assert [r["tags"] for r in untagged] == [r["tags"] for r in tagged]
    for record in untagged:
        for entity in record["entities"]:
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]
            words = record["words"][entity["first_word"] : entity["last_word"] + 1]
            assert entity["text"].replace(" ", "") == "".join(words)


def test_token_classification_entities_from_known_tags():
    from bertkit.tasks.token_classification import WordTags

    class Rows(dict):
        column_names = ("words", "tags")

    sentences = Rows(words=[["Peter", "Blackburn", "in", "Brussels"]], tags=[["O"] * 4])
    features = {"sentence_index": [], "first_of_word": []}
    decoder = WordTags(sentences, features, ("O", "B-PER", "I-PER", "B-LOC"))
    (record,) = decoder.records([["B-PER", "I-PER", "O", "B-LOC"]])
    assert [(e["type"], e["start"], e["end"], e["text"]) for e in record["entities"]] == [
        ("PER", 0, 15, "Peter Blackburn"),
        ("LOC", 19, 27, "Brussels"),
    ]


def test_words_of_raw_text_are_the_tokenizers_words(tiny_checkpoint):
    from transformers import AutoTokenizer

    from bertkit.tasks.token_classification import _word_spans

    line = "北京欢迎你, Peter Blackburn!"
    spans = _word_spans([line], AutoTokenizer.from_pretrained(tiny_checkpoint))[0]
    assert [line[a:b] for a, b in spans] == ["北", "京", "欢", "迎", "你", ",", "Peter", "Blackburn", "!"]


def test_questions_without_ids_take_their_row_and_a_repeated_id_names_both_rows(tmp_path, cache_dir):
    from bertkit.core.errors import DataError
    from bertkit.tasks.question_answering.config import SquadDataConfig
    from bertkit.tasks.question_answering.features import read_for_prediction

    pairs = tmp_path / "q.jsonl"
    pairs.write_text('{"question": "Who?", "context": "Ann."}\n{"question": "Where?", "context": "Here."}\n')
    assert read_for_prediction(str(pairs), SquadDataConfig(), str(cache_dir))["id"] == ["0", "1"]
    pairs.write_text(
        '{"id": "a", "question": "Who?", "context": "Ann."}\n{"id": "a", "question": "?", "context": "B"}\n'
    )
    with pytest.raises(DataError, match=r"q.jsonl: line 2 repeats id 'a' of line 1"):
        read_for_prediction(str(pairs), SquadDataConfig(), str(cache_dir))


def test_question_answering_equals_training_on_squad_json_and_answers_jsonl_with_offsets(squad_run, tmp_path):
    train.run(compose_config(squad_run("v1", "trainer.eval_batch_size=8")))
    model = tmp_path / "run" / "model"
    assert bertkit_predict(model, SQUAD_V1, "--output", tmp_path / "out.json", "--batch-size", 8) == 0
    expected = (tmp_path / "run" / "predictions" / "predictions.json").read_text()
    assert (tmp_path / "out.json").read_text() == expected

    questions = [
        {"id": qa["id"], "question": qa["question"], "context": paragraph["context"]}
        for article in json.loads(SQUAD_V1.read_text())["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]
    pairs = tmp_path / "questions.jsonl"
    pairs.write_text("".join(json.dumps(q) + "\n" for q in questions))
    assert bertkit_predict(model, pairs, "--output", tmp_path / "out.jsonl", "--batch-size", 8, "--top-k", 3) == 0
    answers = records(tmp_path / "out.jsonl")
    assert {a["id"]: a["answer"] for a in answers} == json.loads(expected)
    assert bertkit_predict(model, pairs, "--output", tmp_path / "sorted.jsonl", "--sort-by-length") == 0
    assert [a["answer"] for a in records(tmp_path / "sorted.jsonl")] == [a["answer"] for a in answers]
    contexts = {q["id"]: q["context"] for q in questions}
    for answer in answers:
        assert len(answer["alternatives"]) <= 3 and 0 < answer["score"] <= 1
        if answer["answer"]:
            assert contexts[answer["id"]][answer["start"] : answer["end"]] == answer["answer"]


def test_multiple_choice_equals_training(mc_run, tmp_path):
    test = swag_csv(tmp_path / "test.csv")
    train.run(compose_config(mc_run(f"data.test_file={test}")))
    model = tmp_path / "run" / "model"
    assert bertkit_predict(model, test, "--output", tmp_path / "out.tsv", "--batch-size", 8) == 0
    assert (tmp_path / "out.tsv").read_text() == (tmp_path / "run" / "predictions" / "test.tsv").read_text()
    assert bertkit_predict(model, test, "--output", tmp_path / "out.jsonl") == 0
    first = records(tmp_path / "out.jsonl")[0]
    assert first["prediction"] in first["probabilities"]


def test_fill_mask_ranks_tokens_as_the_transformers_pipeline_does(tiny_run, tmp_path):
    train.run(compose_config(tiny_run()))
    model = tmp_path / "run" / "model"
    texts = tmp_path / "masked.txt"
    texts.write_text("the [MASK] of the sentence .\nit is a [MASK] and a [MASK] .\n")
    assert bertkit_predict(model, texts, "--output", tmp_path / "out.jsonl", "--top-k", 3) == 0
    out = records(tmp_path / "out.jsonl")
    assert [len(r["masks"]) for r in out] == [1, 2]
    fill = pipeline("fill-mask", model=str(model), top_k=3)
    expected = fill("the [MASK] of the sentence .")
    got = out[0]["masks"][0]
    assert [e["token"] for e in expected] == [g["token"] for g in got]
    assert [e["score"] for e in expected] == pytest.approx([g["score"] for g in got], abs=1e-5)


def test_bad_input_is_one_line_and_writes_nothing(ft, tmp_path, capsys):
    data = write_csv(tmp_path / "train.csv", ["neg", "pos"], rows=40)
    train.run(compose_config(ft(data)))
    model = tmp_path / "run" / "model"
    out = tmp_path / "out.tsv"
    out.write_text("an earlier result\n")
    headerless = tmp_path / "other.csv"
    headerless.write_text("review,stars\ngood,5\n")
    cases = [
        ((tmp_path / "missing.csv",), "INPUT: '" + str(tmp_path / "missing.csv") + "' does not exist"),
        ((headerless,), "no column 'text' (data.text_column=...); the columns are ['review', 'stars']"),
        ((data, "data.text_colum=review"), "invalid setting data.text_colum"),
        ((data, "trainer.max_steps=1"), "predict takes data settings only"),
        ((data, "data.max_seq_length=4096"), "data.max_seq_length"),
        ((tmp_path / "nowhere", data), "MODEL_DIR="),
        ((data, "--output", tmp_path / "out.csv"), "predictions are written as .jsonl, .tsv"),
    ]
    for args, message in cases:
        full = list(args) if args[0] == tmp_path / "nowhere" else [model, *args]
        full += [] if "--output" in full else ["--output", out]
        assert bertkit_predict(*full) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and err[-1].startswith("bertkit: error:"), err
    assert out.read_text() == "an earlier result\n"
    assert not (tmp_path / "out.csv").exists()
