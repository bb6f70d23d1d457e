"""CoNLL-style column files (CoNLL-2003 and your own NER data) and the Hub's CoNLL-2003: a row per sentence.

A line per word, columns separated by tabs (when the first line has one; a word may then hold spaces) or by
whitespace, the tag in `data.tag_column`, a blank line after each sentence, `-DOCSTART-` lines between
documents. A byte-order mark (at the start of the file or of a line) is dropped, and a line of only invisible
characters is blank. Every line has the number of columns of the file's first word line; one that differs names
the file and line, or is left out. Tags of any scheme (IOB1 as CoNLL-2003's, IOB2, BIOES, IO) can be turned
into IOB2 as they are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets

from bertkit.core.errors import DataError
from bertkit.readers import tag_schemes
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


def read_columns(
    file: FileKey, tag_column: int, to_iob2: bool, datasets_cache: str, skip_bad_lines: bool = False
) -> datasets.Dataset:
    """The sentences of one column file (cached under its path, size and modification time); the tag is read
    from column `tag_column` (data.tag_column), any scheme's tags turned into IOB2 if asked (data.to_iob2); a line
    with another number of columns stops the read naming it, or is left out (data.bad_lines=skip)."""
    kwargs = {"file": file, "tag_column": tag_column, "to_iob2": to_iob2, "skip": skip_bad_lines}
    return dataset_from_generator(_sentences, kwargs, datasets_cache, FEATURES)


INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00a0\u00ad"
"""Characters that show nothing: a line of only these (and spaces) is blank, a byte-order mark is dropped."""


def _visible(line: str) -> str:
    """The line without byte-order marks, and without spaces and invisible characters at either end."""
    return line.replace("\ufeff", "").strip().strip(INVISIBLE).strip()


def split_columns(line: str, tabs: bool) -> list[str]:
    """A line's columns: tab-separated (a word may hold spaces) or whitespace-separated; [] for a blank line."""
    if not _visible(line):
        return []
    line = line.replace("\ufeff", "")
    return [c.strip() for c in line.rstrip().split("\t")] if tabs else line.split()


def _word_lines(path: str) -> Iterator[tuple[int, list[str], bool]]:
    """(line number, columns, invisible) of every line: no columns for a sentence break (a blank line, one of
    only invisible characters, which `invisible` marks, or -DOCSTART-). The file's columns are tab-separated
    when its first word line has a tab (CoNLL-2003 separates even -DOCSTART- lines by spaces)."""
    tabs = None
    for number, line in enumerate(decoded_lines(path), start=1):
        visible = _visible(line)
        if not visible or visible.split()[:1] == ["-DOCSTART-"]:
            yield number, [], bool(line.strip()) and not visible
            continue
        tabs = "\t" in visible if tabs is None else tabs
        yield number, split_columns(line, tabs), False


def line_counts(path: str) -> dict[str, int]:
    """What the reader treats specially, counted: lines blank but for invisible characters, and lines whose
    number of columns differs from the first word line's (an error, or left out with data.bad_lines=skip)."""
    counts = {"invisible_blank_lines": 0, "bad_lines": 0}
    width = None
    for _, columns, invisible in _word_lines(path):
        counts["invisible_blank_lines"] += invisible
        if columns:
            width = len(columns) if width is None else width
            counts["bad_lines"] += len(columns) != width
    return counts


def _sentences(file: FileKey, tag_column: int, to_iob2: bool, skip: bool) -> Iterator[dict[str, Any]]:
    path = file[0]
    width = None
    words: list[str] = []
    tags: list[str] = []
    first_line = 0
    for number, columns, _ in _word_lines(path):
        if not columns:
            if words:
                yield _sentence(words, tags, first_line, to_iob2, path)
                words, tags = [], []
            continue
        if width is None:
            width = len(columns)
            if not -width <= tag_column < width:
                raise DataError(
                    f"{path}: line {number} has {width} columns, so data.tag_column={tag_column} does not exist"
                )
        if len(columns) != width:
            if skip:
                continue
            raise DataError(
                f"{path}: line {number} has {len(columns)} columns where the lines before have {width} "
                "(data.bad_lines=skip leaves such lines out)"
            )
        if not words:
            first_line = number
        words.append(columns[0])
        tags.append(columns[tag_column])
    if words:
        yield _sentence(words, tags, first_line, to_iob2, path)


def _sentence(words: list[str], tags: list[str], line: int, to_iob2: bool, path: str) -> dict[str, Any]:
    if not to_iob2:
        return {WORDS: words, TAGS: tags, LINE: line}
    try:
        return {WORDS: words, TAGS: tag_schemes.to_iob2(tags), LINE: line}
    except ValueError as bad:
        at = line + tags.index(str(bad))
        raise DataError(
            f"{path}: line {at}: tag {str(bad)!r} is in no tag scheme (O, or B-/I-/E-/S-/L-/U- and a type); "
            "check data.tag_column, or set data.to_iob2=false to read tags as they are"
        ) from None


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
