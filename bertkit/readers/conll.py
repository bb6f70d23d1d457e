"""CoNLL-style column files (CoNLL-2003 and your own NER data) and the Hub's CoNLL-2003: a row per sentence.

A line per word, whitespace-separated columns with the tag in `data.tag_column`, a blank line after each
sentence, `-DOCSTART-` lines between documents. Every line of a file has the number of columns of the
file's first word line; one that differs names the file and line. IOB1 tags (CoNLL-2003's) can be turned
into IOB2 as they are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets

from bertkit.core.errors import DataError
from bertkit.readers.files import FileKey, dataset_from_generator, decoded_lines, load_hub

WORDS, TAGS, LINE = "words", "tags", "line"
"""A sentence's words, their tags, and the line of its first word in the file (for messages and output)."""
FEATURES = datasets.Features(
    {
        WORDS: datasets.List(datasets.Value("string")),
        TAGS: datasets.List(datasets.Value("string")),
        LINE: datasets.Value("int64"),
    }
)


def read_columns(file: FileKey, tag_column: int, to_iob2: bool, datasets_cache: str) -> datasets.Dataset:
    """The sentences of one column file (cached under its path, size and modification time); the tag is read
    from column `tag_column` (data.tag_column), IOB1 tags turned into IOB2 if asked (data.to_iob2)."""
    kwargs = {"file": file, "tag_column": tag_column, "to_iob2": to_iob2}
    return dataset_from_generator(_sentences, kwargs, datasets_cache, FEATURES)


def _sentences(file: FileKey, tag_column: int, to_iob2: bool) -> Iterator[dict[str, Any]]:
    path = file[0]
    width = None
    words: list[str] = []
    tags: list[str] = []
    first_line = 0
    for number, line in enumerate(decoded_lines(path), start=1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if words:
                yield _sentence(words, tags, first_line, to_iob2)
                words, tags = [], []
            continue
        if width is None:
            width = len(columns)
            if not -width <= tag_column < width:
                raise DataError(
                    f"{path}: line {number} has {width} columns, so data.tag_column={tag_column} does not exist"
                )
        if len(columns) != width:
            raise DataError(f"{path}: line {number} has {len(columns)} columns where the lines before have {width}")
        if not words:
            first_line = number
        words.append(columns[0])
        tags.append(columns[tag_column])
    if words:
        yield _sentence(words, tags, first_line, to_iob2)


def _sentence(words: list[str], tags: list[str], line: int, to_iob2: bool) -> dict[str, Any]:
    return {WORDS: words, TAGS: iob1_to_iob2(tags) if to_iob2 else tags, LINE: line}


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 -> IOB2: an I-X that does not continue an entity of type X (after O, or after another type)
    starts one, so it becomes B-X. Valid IOB2 is unchanged."""
    out: list[str] = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            previous = out[i - 1] if i else "O"
            if previous == "O" or previous[2:] != tag[2:]:
                tag = "B-" + tag[2:]
        out.append(tag)
    return out


def read_hub(hub_name: str, datasets_cache: str) -> dict[str, datasets.Dataset]:
    """train, validation and test from the Hub (eriktks/conll2003: IOB2 tags as ClassLabel ids)."""
    offline = (
        "Set data.train_file, data.validation_file and data.test_file to CoNLL column files (make finetune-ner "
        "CONLL_DIR=...)"
    )
    loaded = load_hub(hub_name, None, datasets_cache, f"{hub_name} from the Hub", offline)
    splits = {}
    for split in ("train", "validation", "test"):
        rows = loaded[split]
        names = rows.features["ner_tags"].feature.names
        splits[split] = datasets.Dataset.from_dict(
            {
                WORDS: rows["tokens"],
                TAGS: [[names[t] for t in tags] for tags in rows["ner_tags"]],
                LINE: list(range(1, len(rows) + 1)),  # the Hub has no lines: the sentence number
            },
            features=FEATURES,
        )
    return splits
