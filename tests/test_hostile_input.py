"""Property-based tests: every reader, fed malformed, truncated and random files, either parses or raises
bertkit's own one-line error naming the file; never another exception, never a hang.

Files are drawn three ways: a valid fixture with a few edits (truncated, bytes inserted or deleted: the
malformed files users really have), lines of hostile fragments (tabs, quotes, byte-order marks, broken UTF-8,
brackets), and random bytes; SQuAD JSON also as valid JSON with nodes replaced or deleted. Readers: corpus
text (sentence files, prose, JSON Lines), GLUE TSV, custom CSV/TSV/JSON/JSONL, SQuAD JSON, CoNLL columns.
Cases per reader: 100 (conftest.py's profile), `HYPOTHESIS_PROFILE=thorough` for 1,000;
`pytest --hypothesis-show-statistics` counts them.
"""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transformers import BertTokenizerFast

from bertkit.core.errors import DataError
from bertkit.readers.conll import read_columns
from bertkit.readers.files import file_keys
from bertkit.readers.squad_json import SquadVersion, read_json
from bertkit.tasks.classification.custom import CustomClassification, CustomDataConfig
from bertkit.tasks.classification.glue import TASKS, GlueDataConfig, GlueTask, read_tsv_layout
from bertkit.tasks.pretraining.config import CorpusSource, PretrainCorpusConfig
from bertkit.tasks.pretraining.corpus import load_documents

from .conftest import ASSETS, GLUE_FIXTURES, TINY_CORPUS

HANG_SECONDS = 60
FRAGMENTS = [
    b"\t", b"\n", b"\r\n", b"\r", b"\n\n", b'"', b"'", b",", b"\\", b"{", b"}", b"[", b"]", b":", b"null",
    b"\xef\xbb\xbf", b"\x00", b"\xff\xfe", b"\xe2\x82", b"\xc3", b"0", b"1", b"-1", b"2.5", b"nan", b"1e999",
    b"label", b"text", b"sentence", b"good", b"bad", b"word ", b"-DOCSTART- -X- -X- O",
]  # fmt: skip


@st.composite
def hostile_bytes(draw, valid: bytes) -> bytes:
    kind = draw(st.sampled_from(["edited", "edited", "fragments", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "fragments":
        return b"".join(draw(st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=4), max_size=80)))
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["truncate", "insert", "delete"])):
            case "truncate":
                del data[at:]
            case "insert":
                data[at:at] = draw(st.sampled_from(FRAGMENTS) | st.binary(min_size=1, max_size=4))
            case "delete":
                del data[at : at + draw(st.integers(1, 24))]
    return bytes(data)


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A fresh folder per example (hypothesis runs many examples in one test call), with its own cache."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def parses_or_names_the_file(read: Callable[[], object], path: Path) -> None:
    """The property: `read()` returns, or raises DataError naming `path` in one line; anything else fails."""

    def hang(signum, frame):
        raise AssertionError(f"reading {path} took more than {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(HANG_SECONDS)
    try:
        read()
    except DataError as error:
        message = str(error)
        # The file, or for a corpus-wide problem (a single document) the folder given in data.paths.
        assert str(path) in message or path.name in message or str(path.parent) in message, message
        assert "\n" not in message.strip(), message
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------ corpus text

VALID_SENTENCES = TINY_CORPUS.read_bytes()[:1500]
VALID_PROSE = b"It was late. The rain had stopped.\n\nA new paragraph! Does it end?\n" * 4
VALID_JSONL = b'{"text": "A first document. It has two sentences."}\n{"text": "The second one."}\n'


@pytest.mark.parametrize(
    "source, valid, suffix",
    [
        (CorpusSource.sentence_files, VALID_SENTENCES, ".txt"),
        (CorpusSource.prose_files, VALID_PROSE, ".txt"),
        (CorpusSource.local, VALID_JSONL, ".jsonl"),
    ],
    ids=["sentence_files", "prose_files", "local_jsonl"],
)
@given(data=st.data())
def test_corpus_readers(source, valid, suffix, data):
    content = data.draw(hostile_bytes(valid))
    with workspace() as folder:
        (folder / "corpus").mkdir()
        hostile = folder / "corpus" / f"a{suffix}"
        hostile.write_bytes(content)
        (folder / "corpus" / f"b{suffix}").write_bytes(valid)
        cfg = PretrainCorpusConfig(source=source, paths=[str(folder / "corpus")])
        parses_or_names_the_file(lambda: load_documents(cfg, folder / "cache"), hostile)


# ---------------------------------------------------------------------------------------------- GLUE


@pytest.mark.parametrize("task", [GlueTask.mrpc, GlueTask.cola, GlueTask.stsb], ids=lambda t: t.value)
@pytest.mark.parametrize("split", ["train.tsv", "test.tsv"])
@given(data=st.data())
def test_glue_tsv_reader(task, split, data):
    info = TASKS[task.value]
    fixture = GLUE_FIXTURES / info.folder
    content = data.draw(hostile_bytes((fixture / split).read_bytes()))
    with workspace() as folder:
        task_folder = folder / "glue" / info.folder
        task_folder.mkdir(parents=True)
        for name in ("train.tsv", "dev.tsv", "test.tsv"):
            (task_folder / name).write_bytes((fixture / name).read_bytes())
        (task_folder / split).write_bytes(content)
        cfg = GlueDataConfig(task=task, glue_dir=str(folder / "glue"))
        parses_or_names_the_file(lambda: read_tsv_layout(cfg, info, str(folder / "cache")), task_folder / split)


# ------------------------------------------------------------------------------------------ SQuAD JSON


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10_000) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@st.composite
def edited_json(draw, document):
    """The document with a few nodes replaced by other JSON values or deleted: valid JSON, wrong SQuAD."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        parent, key = None, None
        node = document
        while isinstance(node, dict | list) and node and draw(st.integers(0, 3)) > 0:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, draw(st.sampled_from(keys))
            node = node[key]
        if parent is None:
            continue
        if draw(st.booleans()):
            parent[key] = draw(JSON_VALUES)
        elif isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    return json.dumps(document).encode()


@pytest.mark.parametrize("version", [SquadVersion.v1, SquadVersion.v2])
@given(data=st.data())
def test_squad_json_reader(version, data):
    fixture = ASSETS / "squad" / ("tiny-v1.1.json" if version == SquadVersion.v1 else "tiny-v2.0.json")
    valid = fixture.read_bytes()
    content = data.draw(hostile_bytes(valid) | edited_json(json.loads(valid)))
    with workspace() as folder:
        hostile = folder / "squad.json"
        hostile.write_bytes(content)
        read = lambda: read_json(str(hostile), version, str(folder / "cache"), file_keys([hostile])[0])  # noqa: E731
        parses_or_names_the_file(read, hostile)


# ------------------------------------------------------------------------------------- CoNLL columns


@pytest.mark.parametrize("tag_column", [-1, 3, 7])
@given(data=st.data())
def test_conll_column_reader(tag_column, data):
    content = data.draw(hostile_bytes((ASSETS / "conll" / "dev.txt").read_bytes()))
    with workspace() as folder:
        hostile = folder / "eng.txt"
        hostile.write_bytes(content)
        read = lambda: read_columns(file_keys([hostile])[0], tag_column, True, str(folder / "cache"))  # noqa: E731
        parses_or_names_the_file(read, hostile)


# ----------------------------------------------------------------------------------------- custom data

REVIEWS = [("The soup was warm .", "good"), ("Service was slow .", "bad"), ("Cold coffee again .", "bad")] * 4
VALID_CUSTOM = {
    ".csv": b"review,verdict\n" + b"".join(f"{t},{v}\n".encode() for t, v in REVIEWS),
    ".tsv": b"review\tverdict\n" + b"".join(f"{t}\t{v}\n".encode() for t, v in REVIEWS),
    ".jsonl": b"".join(f'{{"review": "{t}", "verdict": "{v}"}}\n'.encode() for t, v in REVIEWS),
    ".json": b"[" + b",".join(f'{{"review": "{t}", "verdict": "{v}"}}'.encode() for t, v in REVIEWS) + b"]",
}


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory) -> BertTokenizerFast:
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    words = {word.strip(".").lower() for text, label in REVIEWS for word in (*text.split(), label)}
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *sorted(words)]) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab))


@pytest.mark.parametrize("suffix", sorted(VALID_CUSTOM))
@given(data=st.data())
def test_custom_data_reader(suffix, word_tokenizer, data):
    content = data.draw(hostile_bytes(VALID_CUSTOM[suffix]))
    with workspace() as folder:
        hostile = folder / f"reviews{suffix}"
        hostile.write_bytes(content)
        cfg = CustomDataConfig(train_file=str(hostile), text_column="review", label_column="verdict", max_seq_length=32)
        parses_or_names_the_file(lambda: CustomClassification(cfg).build(word_tokenizer, folder / "cache"), hostile)


# ------------------------------------------------------------------- what the properties found, pinned


def test_found_cases_name_file_and_line(tmp_path, word_tokenizer):
    glue = tmp_path / "glue" / "CoLA"
    glue.mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        (glue / name).write_bytes((GLUE_FIXTURES / "CoLA" / name).read_bytes())
    (glue / "train.tsv").write_bytes(b"gj04\t1\t\tA fine sentence .\nbad\t1\r\t\tstray carriage return\n")
    cfg = GlueDataConfig(task=GlueTask.cola, glue_dir=str(tmp_path / "glue"))
    with pytest.raises(DataError, match=r"train\.tsv: line 2: new-line character"):
        read_tsv_layout(cfg, TASKS["cola"], str(tmp_path / "cache"))

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_bytes(b'{"text": "Fine."}\n{"text": "Not \xff UTF-8."}\n')
    cfg = PretrainCorpusConfig(source=CorpusSource.local, paths=[str(corpus)])
    with pytest.raises(DataError, match=r"a\.jsonl: row 2 holds text that is not UTF-8"):
        load_documents(cfg, tmp_path / "cache")

    # pyarrow 26's JSON reader crashes the process (SIGSEGV) on a first record that is null.
    (corpus / "a.jsonl").write_bytes(b'null{"text": "A sentence."}\n')
    with pytest.raises(DataError, match=r"a\.jsonl: line 1 is not a JSON object"):
        load_documents(cfg, tmp_path / "cache")

    # Ten rows, two classes, 10% held out: one validation row cannot be stratified, so it is drawn plainly.
    ten = tmp_path / "ten.csv"
    ten.write_bytes(b"review,verdict\n" + b"The soup was warm .,good\nService was slow .,bad\n" * 5)
    cfg = CustomDataConfig(train_file=str(ten), text_column="review", label_column="verdict")
    bundle = CustomClassification(cfg).build(word_tokenizer, tmp_path / "cache")
    assert len(bundle.train) == 9 and len(bundle.evaluation["validation"]) == 1
