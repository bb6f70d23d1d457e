"""NER on CoNLL-style files: the reader, IOB1 -> IOB2, sub-token labels and windows, the way back to a tag
per word, seqeval scores, and whole runs on hand-written files."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from transformers import AutoModelForTokenClassification, AutoTokenizer

from bertkit import metrics, train
from bertkit.core.batch import IGNORE_INDEX
from bertkit.core.errors import DataError
from bertkit.readers.conll import LINE, TAGS, WORDS, line_counts, read_columns
from bertkit.readers.files import file_keys
from bertkit.readers.tag_schemes import TagScheme, from_iob2
from bertkit.readers.tag_schemes import to_iob2 as iob1_to_iob2
from bertkit.tasks import token_classification as ner
from bertkit.tasks.token_classification import NerDataConfig

from .conftest import ASSETS, SHARED, compose_config, requires_shared

CONLL = ASSETS / "conll"


def test_seqeval_scores_by_hand():
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    predictions = [["B-PER", "I-PER", "O", "I-LOC"], ["B-ORG", "O", "O"]]
    scores = ner.entity_scores(predictions, references)
    assert metrics.load("ner").compute(predictions=predictions, references=references) == scores  # the evaluate module
    # Default (conlleval) mode: I-LOC after O starts an entity, so PER and LOC are found, ORG is cut short.
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["PER_f1"] == 1.0 and scores["LOC_f1"] == 1.0 and scores["ORG_f1"] == 0.0 and scores["ORG_number"] == 1
    # Strict IOB2: I-LOC after O is no entity; 2 predicted (PER right, ORG wrong) of 3 gold: P 1/2, R 1/3, F1 0.4.
    assert scores["strict_precision"] == pytest.approx(0.5) and scores["strict_recall"] == pytest.approx(1 / 3)
    assert scores["strict_f1"] == pytest.approx(0.4) and scores["strict_LOC_recall"] == 0.0
    assert scores["accuracy"] == pytest.approx(5 / 7)  # tokens, O included


def test_iob1_to_iob2():
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG",
    ]  # fmt: skip
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]
    assert iob1_to_iob2(iob2) == iob2


@pytest.mark.parametrize(
    "scheme, tags",
    [
        ("iob1", ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG"]),
        ("iob2", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG"]),
        ("bioes", ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "S-ORG"]),
        ("bilou", ["B-PER", "L-PER", "O", "U-LOC", "B-LOC", "L-LOC", "U-ORG"]),
    ],
)
def test_every_scheme_reads_as_iob2_and_writes_back(scheme, tags):
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG"]
    assert iob1_to_iob2(tags) == iob2
    if scheme in TagScheme.__members__:
        assert from_iob2(iob2, TagScheme(scheme)) == tags
    # IO cannot part adjacent entities of one type: the two locations merge
    assert from_iob2(iob2, TagScheme.io) == ["I-PER", "I-PER", "O", "I-LOC", "I-LOC", "I-LOC", "I-ORG"]
    assert iob1_to_iob2(from_iob2(iob2, TagScheme.io))[3:6] == ["B-LOC", "I-LOC", "I-LOC"]


def test_messy_column_files_byte_order_marks_invisible_lines_tabs_and_bad_lines(tmp_path, cache_dir):
    messy = tmp_path / "messy.txt"
    messy.write_text(
        "\ufeffNew York\tB-LOC\nis\tO\n\u200b \u00a0\nAnna\tB-PER\n\ufeffsmiled\tO\nbroken line\n\nOslo\tB-LOC\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"messy.txt: line 6 has 1 columns where the lines before have 2"):
        read(messy, cache_dir)
    rows = read(messy, cache_dir, bad_lines="skip")
    assert rows[WORDS] == [["New York", "is"], ["Anna", "smiled"], ["Oslo"]]
    assert rows[TAGS][1] == ["B-PER", "O"]
    assert line_counts(str(messy)) == {"invisible_blank_lines": 1, "bad_lines": 1}
    untagged = tmp_path / "untagged.txt"
    untagged.write_text("Anna NNP\nBerg NNP\n")  # the POS column read as tags
    with pytest.raises(DataError, match=r"untagged.txt: line 1: tag 'NNP' is in no tag scheme"):
        read(untagged, cache_dir)


def test_strict_scores_in_another_scheme_reject_what_strict_iob2_rejects():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    guess = [["I-PER", "I-PER", "O", "B-LOC"]]  # an entity begun by I-: lenient counts it, strict does not
    for scheme in (TagScheme.iob2, TagScheme.bioes):
        scores = ner.entity_scores(guess, gold, scheme)
        assert scores["f1"] == 1.0 and scores["strict_f1"] < 1.0, scheme
    # In IOB1 an I- is how an entity begins: the same guess is valid there
    assert ner.entity_scores(guess, gold, TagScheme.iob1)["strict_f1"] == 1.0


def read(path, cache_dir, **settings) -> datasets.Dataset:
    cfg = NerDataConfig(**settings)
    skip = cfg.bad_lines == "skip"
    return read_columns(file_keys([path])[0], cfg.tag_column, cfg.to_iob2, str(cache_dir / "datasets"), skip)


def test_reader_sentences_documents_and_lines(cache_dir):
    rows = read(CONLL / "train.txt", cache_dir)
    assert len(rows) == 16
    assert rows[0][WORDS] == ["Anna", "Berg", "flew", "to", "Oslo", "."] and rows[0][LINE] == 3
    assert rows[2][TAGS][:4] == ["B-LOC", "B-LOC", "O", "B-LOC"]  # IOB1's B- between adjacent locations
    raw = read(CONLL / "train.txt", cache_dir, to_iob2=False)
    assert raw[0][TAGS][:2] == ["I-PER", "I-PER"]
    chunks = read(CONLL / "train.txt", cache_dir, tag_column=2, to_iob2=False)
    assert chunks[0][TAGS][0] == "I-NP"


@pytest.mark.parametrize(
    "content, message",
    [
        ("Anna NNP I-NP I-PER\nBerg NNP I-PER\n", r"line 2 has 3 columns where the lines before have 4"),
        ("", r"holds no sentences"),
        ("\n-DOCSTART- -X- O O\n\n", r"holds no sentences"),
    ],
    ids=["ragged", "empty", "only-docstart"],
)
def test_bad_files_name_file_and_line(ner_run, earlier_run, tmp_path, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    with pytest.raises(DataError, match=f"{bad}.*{message}|{message}.*"):
        train.run(compose_config(ner_run(f"data.train_file={bad}")))


def test_tag_outside_the_training_set_names_it(ner_run, earlier_run, tmp_path):
    dev = tmp_path / "dev.txt"
    dev.write_text((CONLL / "dev.txt").read_text().replace("Rome NNP I-NP I-LOC", "Rome NNP I-NP I-GPE"))
    with pytest.raises(DataError, match=rf"{dev}: line 5: tag 'B-GPE' is not among the training file's tags"):
        train.run(compose_config(ner_run(f"data.validation_file={dev}")))


# ---------------------------------------------------------------------------------- features, decoding


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return AutoTokenizer.from_pretrained(tiny_checkpoint)


def test_first_subtokens_carry_the_tags_and_long_sentences_become_windows(tmp_path, tokenizer):
    long = tmp_path / "long.txt"
    words = [f"Berg{i} NNP I-NP I-PER" if i % 7 == 0 else f"word{i} NN I-NP O" for i in range(60)]
    long.write_text("\n".join(words) + "\n")
    rows = read(long, tmp_path)
    labels = ner.tag_set(rows)
    cfg = NerDataConfig(max_seq_length=32, stride=8)
    features = ner._features(rows, tokenizer, cfg, labels, "test")
    assert len(features) > 1 and ner.split_stats(rows, features)["sentences_split_into_windows"] == 1
    covered = set()
    for feature in features:
        for position, (word, label) in enumerate(zip(feature[ner.FIRST_OF_WORD], feature["labels"], strict=True)):
            if word >= 0:
                covered.add(word)
                assert labels[label] == rows[0][TAGS][word]
            else:
                assert (
                    label == IGNORE_INDEX or position == 0 or feature["input_ids"][position] != tokenizer.cls_token_id
                )
    assert covered == set(range(60))  # every word begins in some window

    everywhere = ner._features(rows, tokenizer, NerDataConfig(max_seq_length=32, stride=8, label_all_subtokens=True),
                               labels, "test2")  # fmt: skip
    assert sum(label != IGNORE_INDEX for f in everywhere for label in f["labels"]) > sum(
        label != IGNORE_INDEX for f in features for label in f["labels"]
    )

    # Decoding: each window predicts its own tag id everywhere; a word takes the window where it is most central.
    width = max(len(f["input_ids"]) for f in features)
    predictions = np.full((len(features), width), IGNORE_INDEX)
    for index, feature in enumerate(features):
        predictions[index, : len(feature["input_ids"])] = index % len(labels)
    tags = ner.WordTags(rows, features, labels).tags({"predictions": predictions})[0]
    assert len(tags) == 60
    first_window_only = [w for w in features[0][ner.FIRST_OF_WORD] if w >= 0][:3]
    assert all(tags[w] == labels[0] for w in first_window_only)
    last_window_only = [w for w in features[len(features) - 1][ner.FIRST_OF_WORD] if w >= 0][-3:]
    assert all(tags[w] == labels[(len(features) - 1) % len(labels)] for w in last_window_only)


# ---------------------------------------------------------------------------------------- whole runs


@pytest.fixture
def ner_run(tmp_path, cache_dir, tiny_checkpoint):
    def make(*extra: str) -> list[str]:
        return [
            "+experiment=conll2003",
            f"model.name_or_path={tiny_checkpoint}",
            f"data.train_file={CONLL / 'train.txt'}",
            f"data.validation_file={CONLL / 'dev.txt'}",
            f"data.test_file={CONLL / 'test.txt'}",
            "trainer.per_device_batch_size=4",
            "trainer.num_epochs=2",
            "trainer.progress_bar=false",
            f"output_dir={tmp_path / 'run'}",
            f"cache_dir={cache_dir}",
            *extra,
        ]

    return make


def test_ner_run_scores_validation_each_epoch_test_at_the_end(ner_run, tmp_path):
    scores = train.run(compose_config(ner_run()))
    assert {"f1", "strict_f1", "accuracy", "PER_f1"} <= set(scores["test"]) and "validation" in scores
    run_dir = tmp_path / "run"
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    evaluations = [r["eval"] for r in records if "eval" in r]
    assert [set(e) for e in evaluations] == [{"validation"}, {"validation", "test"}]
    columns = (run_dir / "predictions" / "test.txt").read_text().split("\n\n")[0].splitlines()
    assert [line.split()[:2] for line in columns][:4] == [
        ["Karl", "B-PER"],
        ["flew", "O"],
        ["to", "O"],
        ["Paris", "B-LOC"],
    ]
    assert all(len(line.split()) == 3 for line in columns)
    model = AutoModelForTokenClassification.from_pretrained(run_dir / "model")
    assert model.config.id2label[0] == "O" and model.config.num_labels == 8  # no I-LOC in the training file


def bioes_copy(source, target, cache_dir):
    """A CoNLL file in BIOES: word and tag columns, tab-separated, sentences as the source's."""
    rows = read(source, cache_dir)
    sentences = ["\n".join(f"{w}\t{t}" for w, t in zip(words, from_iob2(tags, TagScheme.bioes), strict=True))
                 for words, tags in zip(rows[WORDS], rows[TAGS], strict=True)]  # fmt: skip
    target.write_text("\n\n".join(sentences) + "\n")
    return target


@pytest.mark.parametrize("scheme", ["bioes", "io"])
def test_a_bioes_file_trains_and_is_scored_and_written_in_the_scheme_asked(ner_run, tmp_path, cache_dir, scheme):
    files = {split: bioes_copy(CONLL / f"{split}.txt", tmp_path / f"{split}.bioes", cache_dir)
             for split in ("train", "dev", "test")}  # fmt: skip
    overrides = ner_run(f"data.train_file={files['train']}", f"data.validation_file={files['dev']}",
                        f"data.test_file={files['test']}", f"data.tag_scheme={scheme}")  # fmt: skip
    scores = train.run(compose_config(overrides))
    assert ("strict_f1" in scores["test"]) == (scheme == "bioes")  # IO has no strict reading
    written = (tmp_path / "run" / "predictions" / "test.txt").read_text().split("\n\n")[0].splitlines()
    gold = [line.split("\t")[1] for line in files["test"].read_text().split("\n\n")[0].splitlines()]
    expected = gold if scheme == "bioes" else from_iob2(iob1_to_iob2(gold), TagScheme.io)
    assert [line.split()[1] for line in written] == expected
    prefixes = {line.split()[2][0] for line in written}
    assert prefixes <= ({"B", "I", "E", "S", "O"} if scheme == "bioes" else {"I", "O"})


def test_offline_without_files_says_what_to_set(ner_run):
    overrides = [
        o for o in ner_run() if not o.startswith(("data.train_file", "data.validation_file", "data.test_file"))
    ]
    with pytest.raises(DataError, match=r"eriktks/conll2003.*data\.train_file"):
        train.run(compose_config(overrides))


def test_hub_path_maps_class_label_ids_to_tags(monkeypatch, ner_run, tmp_path):
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    features = datasets.Features(
        {"tokens": datasets.List(datasets.Value("string")), "ner_tags": datasets.List(datasets.ClassLabel(names=names))}
    )
    rows = read(CONLL / "train.txt", tmp_path)
    table = datasets.Dataset.from_dict(
        {"tokens": rows[WORDS], "ner_tags": [[names.index(t) for t in tags] for tags in rows[TAGS]]}, features=features
    )
    monkeypatch.setattr(
        "bertkit.readers.conll.datasets.load_dataset",
        lambda name, cache_dir=None: datasets.DatasetDict(train=table, validation=table, test=table),
    )
    overrides = [
        o for o in ner_run() if not o.startswith(("data.train_file", "data.validation_file", "data.test_file"))
    ]
    scores = train.run(compose_config([*overrides, "trainer.num_epochs=1"]))
    assert scores["test"]["PER_number"] == sum(t == "B-PER" for tags in rows[TAGS] for t in tags)


@requires_shared
def test_the_shared_conll2003_files_read_with_their_published_sizes(cache_dir):
    folder = SHARED / "data" / "conll2003"
    for name, sentences, tokens in (
        ("eng.train", 14041, 203621),
        ("eng.testa", 3250, 51362),
        ("eng.testb", 3453, 46435),
    ):
        rows = read(folder / name, cache_dir)
        assert (len(rows), sum(len(w) for w in rows[WORDS])) == (sentences, tokens)
    tags = {t for tags in read(folder / "eng.train", cache_dir)[TAGS] for t in tags}
    assert tags == {"O", *(f"{p}-{t}" for p in "BI" for t in ("PER", "ORG", "LOC", "MISC"))}
