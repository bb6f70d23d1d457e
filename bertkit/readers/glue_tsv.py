"""GLUE's original TSV layout (what `download_glue_data.py` writes), as rows {text, text_pair?, label?, index}.

Read with quoting off: the text fields contain bare `"` characters. Some files have no header (CoLA's train
and dev), some begin with a byte-order mark (MRPC's); test files have no labels. A row with the wrong number of
fields names the file and line, or is skipped and counted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path

import datasets

from bertkit.core.errors import DataError
from bertkit.readers.files import FileKey, dataset_from_generator, decoded_lines, file_keys

TEXT, TEXT_PAIR, LABEL, INDEX = "text", "text_pair", "label", "index"
"""The columns of the rows read: the text(s), the label id or value (absent when unlabeled), and the example's
id in its source (GLUE's `index` column, or the row number), used in prediction files."""


@dataclass(frozen=True)
class TsvLayout:
    """Where one GLUE task keeps its texts and labels in its files."""

    text_columns: tuple[str, ...]
    """Header names of the sentence (and of the second sentence of a pair)."""
    label_column: str
    label_values: tuple[str, ...]
    """Labels as written in the files, in class-id order; empty for a score (regression)."""
    headerless_columns: tuple[str, ...] = ()
    """Names of the columns of labeled files that have no header row (CoLA)."""
    index_column: str = "index"
    """Header name of the test files' example ids."""


def read_tsv(
    path: Path, layout: TsvLayout, labeled: bool, skip_bad_rows: bool, datasets_cache: str
) -> datasets.Dataset:
    """Rows of one GLUE TSV file (cached under the file's path, size and modification time)."""
    features = {TEXT: datasets.Value("string")}
    if len(layout.text_columns) == 2:
        features[TEXT_PAIR] = datasets.Value("string")
    if labeled:
        features[LABEL] = datasets.Value("int64") if layout.label_values else datasets.Value("float32")
    features[INDEX] = datasets.Value("string")
    kwargs = {"file": file_keys([path])[0], "layout": astuple(layout), "labeled": labeled, "skip": skip_bad_rows}
    return dataset_from_generator(_rows, kwargs, datasets_cache, datasets.Features(features))


def _rows(file: FileKey, layout: tuple, labeled: bool, skip: bool) -> Iterator[dict]:
    path = file[0]
    text_columns, label_column, label_values, headerless, index_column = layout
    reader = csv.reader(decoded_lines(path), delimiter="\t", quoting=csv.QUOTE_NONE)
    records = _checked_records(reader, path)
    header = list(headerless) if labeled and headerless else _header(records, path)
    wanted = [*text_columns, label_column] if labeled else list(text_columns)
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} in the header; the columns are {header}")
    positions = [header.index(name) for name in text_columns]
    label_position = header.index(label_column) if labeled else None
    index_position = header.index(index_column) if index_column in header else None
    label_ids = {value: i for i, value in enumerate(label_values)}
    row_number = 0
    for fields in records:
        if not fields or fields == [""]:
            continue  # a trailing blank line
        if len(fields) != len(header):
            if skip:
                continue
            raise DataError(
                f"{path}: line {reader.line_num} has {len(fields)} fields where the header has {len(header)} "
                "(data.bad_rows=skip leaves such rows out)"
            )
        row: dict[str, str | int | float] = {TEXT: fields[positions[0]]}
        if len(positions) == 2:
            row[TEXT_PAIR] = fields[positions[1]]
        if label_position is not None:
            row[LABEL] = _label(fields[label_position], label_ids, path, reader.line_num)
        row[INDEX] = fields[index_position] if index_position is not None else str(row_number)
        row_number += 1
        yield row


def _header(records: Iterator[list[str]], path: str) -> list[str]:
    header = next(records, None)
    if header is None:
        raise DataError(f"{path}: the file is empty")
    if not header:
        raise DataError(f"{path}: line 1, the header, is blank")
    header[0] = header[0].removeprefix("\ufeff")  # MRPC's files begin with a byte-order mark
    return header


def _checked_records(reader, path: str) -> Iterator[list[str]]:
    """The reader's records; what the csv module refuses (a stray carriage return) names file and line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"{path}: line {reader.line_num}: {error}") from None


def _label(value: str, label_ids: dict[str, int], path: str, line: int) -> int | float:
    if not label_ids:
        try:
            return float(value)
        except ValueError:
            raise DataError(f"{path}: line {line}: the score {value!r} is not a number") from None
    if value not in label_ids:
        raise DataError(f"{path}: line {line}: label {value!r} is not one of {sorted(label_ids)}")
    return label_ids[value]


def count_bad_rows(path: Path, layout: TsvLayout, labeled: bool) -> int:
    """Rows whose field count differs from the header's: what data.bad_rows=skip leaves out, to report it."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        width = len(layout.headerless_columns) if labeled and layout.headerless_columns else len(next(reader, []))
        return sum(1 for fields in reader if fields and fields != [""] and len(fields) != width)
