"""Reading input files into `datasets` objects, with errors that name the file, line and setting.

Shared by every data recipe: path expansion (files, directories, globs), UTF-8 decoding that reports the
offending byte, tables (CSV, TSV, JSON, JSONL, parquet) through `datasets`' own builders, and datasets
built by a Python generator and cached on disk under a fingerprint of the generator's arguments.
"""

from __future__ import annotations

import codecs
import glob
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from bertkit.core.errors import DataError, first_line
from bertkit.core.seeding import fingerprint


class EncodingErrors(StrEnum):
    """What to do with bytes that are not UTF-8."""

    strict = "strict"  # stop, naming the file and byte offset
    replace = "replace"  # type: ignore[assignment]  # decode with U+FFFD and go on (the name users type)


TABLE_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
"""File suffix -> the `datasets` builder that reads it."""
_GLOB_CHARS = re.compile(r"[*?\[]")

FileKey = tuple[str, int, int]
"""(absolute path, size, modification time in ns): identifies a file's content for cache fingerprints."""


def expand_paths(patterns: Iterable[str], setting: str = "data.paths") -> list[Path]:
    """Files named by paths, directories (recursively) and glob patterns, in a stable order."""
    files: list[Path] = []
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        if _GLOB_CHARS.search(expanded):
            matches = sorted(Path(p) for p in glob.glob(expanded, recursive=True) if Path(p).is_file())
            if not matches:
                raise DataError(f"{setting}: no file matches {pattern!r}")
            files.extend(matches)
        elif Path(expanded).is_dir():
            found = sorted(p for p in Path(expanded).rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise DataError(f"{setting}: directory {pattern!r} holds no files")
            files.extend(found)
        elif Path(expanded).is_file():
            files.append(Path(expanded))
        else:
            raise DataError(f"{setting}: {pattern!r} does not exist")
    return files


def file_keys(files: Iterable[Path]) -> list[FileKey]:
    """Path, size and modification time: part of the cache fingerprint, so edited files are re-read. The path is
    absolute but not resolved: errors raised while reading name a symlink as the user typed it."""
    return [(os.path.abspath(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def decoded_lines(path: str | Path, errors: str = "strict") -> Iterator[str]:
    """Lines of a UTF-8 file; a bad byte names the file, line and byte offset unless errors=replace."""
    offset = 0
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}: line {line_number}, byte offset {offset + error.start} is not UTF-8 "
                    f"({error.reason}); set data.encoding_errors=replace to decode it as U+FFFD"
                ) from None
            offset += len(raw)


def text_lines(path: str, setting: str, errors: str = "strict") -> list[tuple[str, str]]:
    """(line number, text) of each non-blank line of a text file: a text per line, as predict reads .txt files."""
    if not Path(path).expanduser().is_file():
        raise DataError(f"{setting}: {path!r} does not exist")
    lines = [(str(n), line.strip()) for n, line in enumerate(decoded_lines(Path(path).expanduser(), errors), 1)]
    kept = [(number, text) for number, text in lines if text]
    if not kept:
        raise DataError(f"{path}: holds no text (a text per line)")
    return kept


def table_builder(files: list[Path], setting: str) -> tuple[str, dict[str, Any]]:
    """The `datasets` builder that reads these table files (all of one format), and its options."""
    formats = {TABLE_FORMATS.get(f.suffix.lower()) for f in files}
    if None in formats or len(formats) != 1:
        bad = next((f for f in files if f.suffix.lower() not in TABLE_FORMATS), files[0])
        raise DataError(f"{setting}: {bad} is not one of {sorted(TABLE_FORMATS)} (or the files mix formats)")
    builder = formats.pop()
    assert builder is not None  # None was refused above
    return builder, {"delimiter": "\t"} if builder == "csv" and files[0].suffix.lower() == ".tsv" else {}


def load_table(
    files: list[Path],
    setting: str,
    datasets_cache: str,
    shown: str | None = None,
    column_names: list[str] | None = None,
    as_text: list[str] | None = None,
) -> datasets.Dataset:
    """Rows of CSV, TSV, JSON(L) or parquet files (all of one format), read by `datasets`' builders. shown: how
    errors name the files (a decoded copy is named as the user's file); column_names: a CSV/TSV without a
    header line; as_text: CSV/TSV columns read as strings whatever they look like (e.g. "27" and "2,3")."""
    shown = shown or ", ".join(map(str, files))
    builder, options = table_builder(files, setting)
    if builder == "csv" and column_names:
        options["column_names"] = list(column_names)
    if builder == "csv" and as_text:
        options["converters"] = dict.fromkeys(as_text, str)  # pandas: the cell as written
    if builder == "json":
        for file in files:
            _check_json_records(file, setting, shown if len(files) == 1 else str(file))
    try:
        rows = datasets.load_dataset(
            builder, data_files=[str(f) for f in files], split="train", cache_dir=datasets_cache, **options
        )
    except Exception as error:
        reason = first_line(error)
        raise DataError(f"{setting}: could not read {shown}: {reason}") from None
    if builder == "json":
        _check_utf8(rows, shown, len(files), setting)
    return rows


def load_hub(
    name: str,
    config: str | None,
    datasets_cache: str,
    what: str,
    offline: str,
    split: str | None = None,
    streaming: bool = False,
) -> Any:
    """`datasets.load_dataset` from the Hub (streamed: an iterable dataset); a failure (often: no network) is one
    line, "could not load <what>: <reason>. Offline? <offline>", naming what to set instead."""
    try:
        named = (name,) if config is None else (name, config)
        chosen: dict[str, Any] = {} if split is None else {"split": split}
        if streaming:
            chosen["streaming"] = True
        return datasets.load_dataset(*named, cache_dir=datasets_cache, **chosen)
    except Exception as error:
        raise DataError(f"could not load {what}: {first_line(error)}. Offline? {offline}") from None


def read_table_file(
    path: str,
    setting: str,
    datasets_cache: str,
    encoding_errors: EncodingErrors = EncodingErrors.strict,
    column_names: list[str] | None = None,
    as_text: list[str] | None = None,
) -> datasets.Dataset:
    """The rows of one CSV/TSV/JSON/JSONL/parquet file named by a setting. What `datasets` would report as "An
    error occurred while generating the dataset" is named first: a missing or empty file, a folder, bytes that
    are not UTF-8 (line and byte offset; or decoded as U+FFFD with data.encoding_errors=replace), a CSV
    separated by tabs."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise DataError(f"{setting}: {path!r} is a folder; name a file in it")
    if not file.is_file():
        raise DataError(f"{setting}: {path!r} does not exist")
    if file.suffix.lower() not in TABLE_FORMATS:
        raise DataError(f"{setting}: {path} is not one of {sorted(TABLE_FORMATS)}")
    if file.suffix.lower() != ".parquet":
        file = _checked_text(file, path, setting, encoding_errors, Path(datasets_cache), check_header=not column_names)
    rows = load_table([file], setting, datasets_cache, path, column_names, as_text)
    if len(rows) == 0:
        raise DataError(f"{setting}: {path} holds no rows")
    return rows


def _checked_text(
    file: Path, spelled: str, setting: str, errors: EncodingErrors, cache: Path, check_header: bool = True
) -> Path:
    """The file, once known to be non-empty UTF-8 with the delimiter its name says (read in blocks, never whole);
    with errors=replace and bad bytes, a decoded copy (U+FFFD for them) in the cache."""
    with open(file, "rb") as handle:
        head = handle.read(1 << 16)
    if not head.strip() and file.stat().st_size <= len(head):
        raise DataError(f"{setting}: {spelled} is empty (not even a header line)")
    if check_header:
        _check_delimiter(head.decode("utf-8", errors="replace").lstrip("\ufeff").split("\n", 1)[0], spelled, setting)
    bad = _first_bad_byte(file)
    if bad is None:
        return file
    if errors == EncodingErrors.strict:
        line, offset, reason = bad
        raise DataError(
            f"{setting}: {spelled}: line {line}, byte offset {offset} is not UTF-8 ({reason}); "
            "set data.encoding_errors=replace to decode it as U+FFFD, or save the file as UTF-8"
        )
    stat = file.stat()
    copy = cache / "utf8" / f"{fingerprint(str(file.absolute()), stat.st_size, stat.st_mtime_ns)}{file.suffix}"
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        staging = copy.with_name(copy.name + ".tmp")
        with open(file, encoding="utf-8", errors="replace", newline="") as source:
            with open(staging, "w", encoding="utf-8", newline="") as target:
                shutil.copyfileobj(source, target)
        staging.replace(copy)
    return copy


def _first_bad_byte(file: Path) -> tuple[int, int, str] | None:
    """(line, byte offset, reason) of the first byte that is not UTF-8, read block by block."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with open(file, "rb") as handle:
        for block in [*iter(lambda: handle.read(1 << 20), b""), b""]:  # b"": the end, where a sequence may be cut
            pending = decoder.getstate()[0]  # bytes of a character begun in the previous block
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                line = lines + (pending + block)[: error.start].count(b"\n")
                return line, offset - len(pending) + error.start, error.reason
            offset += len(block)
            lines += block.count(b"\n")
    return None


def _check_delimiter(header: str, spelled: str, setting: str) -> None:
    suffix = Path(spelled).suffix.lower()
    if suffix == ".csv" and "\t" in header and "," not in header:
        raise DataError(f"{setting}: {spelled}: its header line is separated by tabs, not commas; name it .tsv")
    if suffix == ".tsv" and "," in header and "\t" not in header:
        raise DataError(f"{setting}: {spelled}: its header line is separated by commas, not tabs; name it .csv")


def _check_json_records(path: Path, setting: str, shown: str) -> None:
    """Arrow's JSON reader crashes the process (pyarrow 26: a segmentation fault) on a record that is `null`
    and stops with an unhelpful message on other non-objects: check that every record is an object first.
    A .json file is an array of objects (or of strings), or JSON Lines like a .jsonl file."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16).lstrip(b"\xef\xbb\xbf \t\r\n")
    if path.suffix.lower() == ".json" and head.startswith(b"["):
        try:
            records = json.loads(path.read_bytes().decode("utf-8-sig"))
        except UnicodeDecodeError as error:
            raise DataError(f"{setting}: {shown}: byte offset {error.start} is not UTF-8") from None
        except json.JSONDecodeError as error:
            raise DataError(
                f"{setting}: {shown}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
            ) from None
        if not (all(isinstance(r, dict) for r in records) or all(isinstance(r, str) for r in records)):
            kind = dict if any(isinstance(r, dict) for r in records) else str
            bad = next(i for i, r in enumerate(records) if not isinstance(r, kind))
            raise DataError(f"{setting}: {shown}: record {bad + 1} is {_json_kind(records[bad])}, not an object")
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            record = line.strip().removeprefix(b"\xef\xbb\xbf") if number == 1 else line.strip()
            if record and not record.startswith(b"{"):
                raise DataError(
                    f"{setting}: {shown}: line {number} is not a JSON object (JSON Lines: one object per line)"
                )


def _json_kind(value) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _check_utf8(rows: datasets.Dataset, shown: str, count: int, setting: str) -> None:
    """Arrow's JSON reader stores invalid UTF-8 as is, to fail much later when a string is read: fail now,
    naming the row."""
    offset = 0
    for chunk in rows.data.to_batches():
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:
            bad = next(i for i in range(chunk.num_rows) if not _valid(chunk.slice(i, 1)))
            where = f"row {offset + bad + 1}" + (" (counting across the files)" if count > 1 else "")
            raise DataError(f"{setting}: {shown}: {where} holds text that is not UTF-8") from None
        offset += chunk.num_rows


def _valid(batch: pa.RecordBatch) -> bool:
    try:
        batch.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def dataset_from_generator(
    generator: Callable[..., Iterator[dict]],
    gen_kwargs: dict,
    datasets_cache: str,
    features: datasets.Features,
    writer_batch_size: int | None = None,
) -> datasets.Dataset:
    """`Dataset.from_generator`, cached under its arguments; a DataError raised inside is raised as is.

    writer_batch_size: rows held in memory before they are written (datasets' default is 1,000: fine for
    table rows, too many when a row is a whole book)."""
    try:
        return datasets.Dataset.from_generator(
            generator,
            gen_kwargs=gen_kwargs,
            cache_dir=datasets_cache,
            features=features,
            writer_batch_size=writer_batch_size,
        )
    except ValueError as error:
        if "corresponds to no data" not in str(error):  # datasets' way of saying: nothing was generated
            raise
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, DataError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def row_location(path: str | Path, row: int) -> str:
    """Where data row `row` (0-based, the header not counted) of a table file sits, as precisely as its format
    allows: a line of CSV, TSV or JSON Lines, a record of a JSON array or parquet file."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return f"line {row + 2}"  # after the header line
    if suffix == ".jsonl":
        return f"line {row + 1}"
    return f"record {row + 1}"
