"""Raw text sources -> documents, each a list of sentences, as a `datasets.Dataset` cached on disk.

Every source yields rows `{"sentences": [str, ...]}`, one row per document, in a deterministic order.
Document boundaries matter: next-sentence prediction draws its positives from within a document and its
negatives from other documents.
"""

from __future__ import annotations

import ast
import contextlib
import multiprocessing
import re
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import blingfire
import datasets
import pyarrow as pa

from bertkit.core.errors import DataError
from bertkit.core.seeding import fingerprint
from bertkit.readers.files import (
    TABLE_FORMATS,
    dataset_from_generator,
    decoded_lines,
    expand_paths,
    file_keys,
    load_hub,
    load_table,
    table_builder,
)
from bertkit.tasks.pretraining.config import CorpusSource, PretrainCorpusConfig

SENTENCES = "sentences"
DOCUMENT_FEATURES = datasets.Features({SENTENCES: datasets.List(datasets.Value("string"))})
_BLANK = re.compile(r"\n\s*\n")
_SPACES = re.compile(r"\s+")
_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF (THIS|THE) PROJECT GUTENBERG", re.IGNORECASE)
_GUTENBERG_END = re.compile(
    r"^(\*\*\*\s*END OF (THIS|THE) PROJECT GUTENBERG|End of (the )?Project Gutenberg)", re.IGNORECASE
)
_GUTENBERG_CREDITS = re.compile(r"^\s*(Produced by|E-text prepared by|Transcribed from)", re.IGNORECASE)


def load_documents(cfg: PretrainCorpusConfig, cache_dir: Path) -> datasets.Dataset:
    """Read the configured source into a dataset of documents; errors name the file or setting."""
    datasets_cache = str(cache_dir / "datasets")
    match cfg.source:
        case CorpusSource.sentence_files | CorpusSource.prose_files:
            documents = _documents_from_generator(*_generated_documents(cfg, cfg.num_proc), datasets_cache)
            where = ", ".join(cfg.paths)
        case CorpusSource.embedded:
            documents = _documents_from_generator(*_generated_documents(cfg, cfg.num_proc), datasets_cache)
            where = f"the embedded corpus (data.embedded.packages={cfg.embedded.packages})"
        case CorpusSource.local:
            documents = _rows_to_documents(_load_local_rows(cfg, datasets_cache), cfg)
            where = ", ".join(cfg.paths)
        case CorpusSource.hub:
            documents = _rows_to_documents(_load_hub_rows(cfg, datasets_cache), cfg)
            where = f"Hub dataset {cfg.hub_name}"
    if cfg.max_documents is not None:
        documents = documents.select(range(min(cfg.max_documents, len(documents))))
    if len(documents) == 0:
        raise DataError(f"the corpus is empty: no sentences in {where} (data.paths / data.source)")
    if len(documents) < 2:
        raise DataError(
            f"the corpus has a single document ({where}); next-sentence prediction needs at least two "
            f"({_DOCUMENT_BOUNDARIES[cfg.source]}){_files_without_text(cfg)}"
        )
    return documents


def stream_documents(cfg: PretrainCorpusConfig, cache_dir: Path) -> datasets.IterableDataset:
    """data.streaming: the documents `load_documents` would read, as an iterable dataset read as it is
    consumed (nothing cached). Each text or table file is a shard of the stream, a Hub dataset has its own."""
    cache = str(cache_dir / "datasets")  # what datasets keeps of a streamed dataset: its scripts and metadata
    match cfg.source:
        case CorpusSource.sentence_files | CorpusSource.prose_files | CorpusSource.embedded:
            # one process: the stream may be read in a data loader's worker, which starts no processes
            reader, kwargs = _generated_documents(cfg, num_proc=1)
            return datasets.IterableDataset.from_generator(reader, features=DOCUMENT_FEATURES, gen_kwargs=kwargs)
        case CorpusSource.local:
            files = expand_paths(cfg.paths)
            builder, options = table_builder(files, "data.paths")
            rows = datasets.load_dataset(
                builder, data_files=[str(f) for f in files], split="train", streaming=True, cache_dir=cache, **options
            )
            return _streamed_rows_to_documents(rows, cfg, ", ".join(cfg.paths))
        case CorpusSource.hub:
            rows = _load_hub_rows(cfg, cache, streaming=True)
            return _streamed_rows_to_documents(rows, cfg, f"Hub dataset {cfg.hub_name}")


def _generated_documents(cfg: PretrainCorpusConfig, num_proc: int) -> tuple[Callable[..., Iterator[dict]], dict]:
    """The generator of documents of a text-file or embedded source, and its arguments (a list among them is
    what datasets shards a stream by: one shard per file)."""
    if cfg.source == CorpusSource.embedded:
        return _docstring_documents, {
            "files": tuple(file_keys(embedded_source_files(cfg.embedded.packages))),  # a tuple: one shard, max_chars
            "max_chars": cfg.embedded.max_chars,
            "min_sentences": cfg.embedded.min_sentences,
            "num_proc": num_proc,
        }
    kwargs: dict[str, Any] = {"files": file_keys(expand_paths(cfg.paths)), "errors": str(cfg.encoding_errors)}
    if cfg.source == CorpusSource.prose_files:
        return _prose_documents, kwargs | {"strip_boilerplate": cfg.strip_boilerplate}
    return _sentence_file_documents, kwargs


def stream_fingerprint(cfg: PretrainCorpusConfig) -> str:
    """Identifies the text a stream reads (its files as they are now, or the Hub dataset) without reading it."""
    match cfg.source:
        case CorpusSource.hub:
            where: Any = [cfg.hub_name, cfg.hub_config, cfg.hub_split]
        case CorpusSource.embedded:
            where = [file_keys(embedded_source_files(cfg.embedded.packages)), asdict(cfg.embedded)]
        case _:
            where = file_keys(expand_paths(cfg.paths))
    reading = [cfg.text_column, str(cfg.encoding_errors), cfg.strip_boilerplate]
    return fingerprint("stream", str(cfg.source), where, reading)


def _streamed_rows_to_documents(
    rows: datasets.IterableDataset, cfg: PretrainCorpusConfig, where: str
) -> datasets.IterableDataset:
    """Each streamed row is a document (data.document_start_pattern joins rows only when not streaming)."""
    column = cfg.text_column

    def per_row(row: dict[str, Any]) -> dict[str, Any]:
        if column not in row:
            raise DataError(f"{where}: no column {column!r} (data.text_column); columns are {sorted(row)}")
        return {SENTENCES: split_sentences(row[column] or "")}

    return rows.map(per_row, remove_columns=rows.column_names, features=DOCUMENT_FEATURES).filter(
        lambda row: len(row[SENTENCES]) > 0
    )


def _files_without_text(cfg: PretrainCorpusConfig) -> str:
    """For an error message: the text files that held nothing but blank lines, if any."""
    if cfg.source not in (CorpusSource.sentence_files, CorpusSource.prose_files):
        return ""
    empty = [str(f) for f in expand_paths(cfg.paths) if not any(s.strip() for s in decoded_lines(f, "replace"))]
    return f"; no text in {', '.join(empty)}" if empty else ""


_DOCUMENT_BOUNDARIES = {
    CorpusSource.sentence_files: "in sentence files, separate documents with a blank line",
    CorpusSource.prose_files: "each prose file is one document: give at least two files",
    CorpusSource.local: "each row is a document, or rows are joined per data.document_start_pattern",
    CorpusSource.hub: "each row is a document, or rows are joined per data.document_start_pattern",
    CorpusSource.embedded: "add packages to data.embedded.packages or raise data.embedded.max_chars",
}


# ------------------------------------------------------------------------------------------ text files


def _sentence_file_documents(files: list[tuple[str, int, int]], errors: str) -> Iterator[dict]:
    """google-research/bert format: one sentence per line, a blank line between documents."""
    for path, _, _ in files:
        sentences: list[str] = []
        for line in decoded_lines(path, errors):
            line = line.strip()
            if line:
                sentences.append(line)
            elif sentences:
                yield {SENTENCES: sentences}
                sentences = []
        if sentences:
            yield {SENTENCES: sentences}


def _prose_documents(files: list[tuple[str, int, int]], errors: str, strip_boilerplate: bool) -> Iterator[dict]:
    """Plain prose: one document per file, paragraphs (blank-line separated) split into sentences.

    With strip_boilerplate, a Project Gutenberg file keeps only the book: its title page and license
    (before "*** START OF ..."), the "Produced by ..." credits right after it, and the trailer from
    "End of the Project Gutenberg EBook ..." or "*** END OF ..." on are not prose of the book.
    """
    for path, _, _ in files:
        sentences: list[str] = []
        paragraph: list[str] = []
        after_start = False
        for line in decoded_lines(path, errors):
            if strip_boilerplate and _GUTENBERG_START.match(line):
                sentences, paragraph, after_start = [], [], True
                continue
            if strip_boilerplate and _GUTENBERG_END.match(line):
                break
            if line.strip():
                paragraph.append(line)
            elif paragraph:
                if not (after_start and not sentences and _GUTENBERG_CREDITS.match(paragraph[0])):
                    sentences.extend(split_sentences(" ".join(paragraph)))
                paragraph = []
        sentences.extend(split_sentences(" ".join(paragraph)))
        if sentences:
            yield {SENTENCES: sentences}


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: paragraphs at blank lines, then Bling Fire's sentence breaker within each."""
    sentences: list[str] = []
    for paragraph in _BLANK.split(text):
        paragraph = _SPACES.sub(" ", paragraph).strip()
        if paragraph:
            sentences.extend(s for s in blingfire.text_to_sentences(paragraph).split("\n") if s.strip())
    return sentences


# ---------------------------------------------------------------------------------------- tables / hub


def _load_local_rows(cfg: PretrainCorpusConfig, datasets_cache: str) -> datasets.Dataset:
    files = expand_paths(cfg.paths)
    if any(f.suffix.lower() not in TABLE_FORMATS for f in files):
        bad = next(f for f in files if f.suffix.lower() not in TABLE_FORMATS)
        raise DataError(
            f"data.paths: {bad} is not one of {sorted(TABLE_FORMATS)}; "
            "use data.source=prose_files or sentence_files for plain text"
        )
    rows = load_table(files, "data.paths", datasets_cache)
    if cfg.text_column not in rows.column_names:
        raise DataError(
            f"{files[0]}: no column {cfg.text_column!r} (data.text_column); columns are {rows.column_names}"
        )
    return rows


def _load_hub_rows(cfg: PretrainCorpusConfig, datasets_cache: str, streaming: bool = False) -> Any:
    """The rows of the Hub dataset (streamed: an iterable dataset, whose columns may be known only once read)."""
    assert cfg.hub_name is not None  # the schema requires it for data.source=hub
    what = f"Hub dataset {cfg.hub_name!r} (data.hub_name, config {cfg.hub_config!r})"
    offline = "Save it as files and use data.source=local data.paths=[...]"
    rows = load_hub(cfg.hub_name, cfg.hub_config, datasets_cache, what, offline, cfg.hub_split, streaming)
    if rows.column_names is not None and cfg.text_column not in rows.column_names:
        raise DataError(
            f"Hub dataset {cfg.hub_name}: no column {cfg.text_column!r} (data.text_column); "
            f"columns are {rows.column_names}"
        )
    return rows


def _rows_to_documents(rows: datasets.Dataset, cfg: PretrainCorpusConfig) -> datasets.Dataset:
    """Each row is a document, or, with data.document_start_pattern, rows are joined until a match."""
    column = cfg.text_column
    start = re.compile(cfg.document_start_pattern) if cfg.document_start_pattern else None

    def per_row(batch: dict[str, list]) -> dict[str, list]:
        return {SENTENCES: [split_sentences(text or "") for text in batch[column]]}

    def joined(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        # Each batch emits the documents that START in it, reading past its end to finish the last one;
        # the rows before its first start belong to a document an earlier batch emitted.
        assert start is not None  # the map joins rows only when there is a pattern
        texts = [text or "" for text in batch[column]]
        starts = [i for i, text in enumerate(texts) if start.match(text)]
        if indices[0] == 0 and (not starts or starts[0] != 0):
            starts.insert(0, 0)  # the corpus's leading rows form a document of their own
        documents = []
        for n, first in enumerate(starts):
            last = starts[n + 1] if n + 1 < len(starts) else len(texts)
            document = [s for text in texts[first:last] for s in split_sentences(text)]
            if n + 1 == len(starts):
                for text in _rows_until_start(rows, column, start, indices[0] + len(texts)):
                    document.extend(split_sentences(text))
            documents.append(document)
        return {SENTENCES: documents}

    documents = rows.map(
        per_row if start is None else joined,
        batched=True,
        with_indices=start is not None,
        batch_size=1000,
        num_proc=None if cfg.num_proc < 2 else cfg.num_proc,
        remove_columns=rows.column_names,
        desc="Splitting sentences",
    )
    return documents.filter(lambda row: len(row[SENTENCES]) > 0, desc="Dropping empty documents")


def _rows_until_start(rows: datasets.Dataset, column: str, start: re.Pattern, index: int) -> Iterator[str]:
    """Texts of rows from `index` on, until a row that starts a document (read ahead 256 at a time)."""
    while index < len(rows):
        for text in rows[index : index + 256][column]:
            if start.match(text or ""):
                return
            yield text or ""
        index += 256


def _documents_from_generator(generator, gen_kwargs: dict, datasets_cache: str) -> datasets.Dataset:
    # A document may be a whole book: a few at a time in memory, not datasets' default of 1,000.
    return dataset_from_generator(generator, gen_kwargs, datasets_cache, DOCUMENT_FEATURES, writer_batch_size=8)


def sentence_chunks(documents: Iterable[list[str]], max_sentences: int = 10_000) -> Iterator[list[str]]:
    """All sentences of the documents in order, in lists of at most max_sentences, reading one document at a
    time: memory stays flat however large the corpus is."""
    chunk: list[str] = []
    for document in documents:
        for sentence in document:
            chunk.append(sentence)
            if len(chunk) == max_sentences:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def each_document(documents: datasets.Dataset) -> Iterator[list[str]]:
    """Each document's sentences. A dataset that is its cache files (no indices mapping) is read with plain
    file reads, one record batch at a time: memory-mapped reads would keep every page read resident."""
    if documents._indices is not None or not documents.cache_files:
        for row in documents.select_columns([SENTENCES]).iter(batch_size=1):
            yield row[SENTENCES][0]
        return
    for cache_file in documents.cache_files:
        with pa.OSFile(cache_file["filename"]) as source:
            for batch in pa.ipc.open_stream(source):
                yield from batch.column(SENTENCES).to_pylist()


def mean_row_bytes(dataset: datasets.Dataset) -> float:
    """Bytes one row takes in the Arrow table on average (read from buffer sizes, not from the data)."""
    table = dataset.data
    return table.nbytes / max(1, table.num_rows)


def rows_per_batch(dataset: datasets.Dataset, budget_bytes: int, most: int) -> int:
    """How many rows to process at once so that a batch holds about budget_bytes of data (at least one)."""
    return max(1, min(most, int(budget_bytes / max(1.0, mean_row_bytes(dataset)))))


# ------------------------------------------------------------------------------------------- embedded

_SKIP_DIRS = {"test", "tests", "testing", "idlelib", "turtledemo", "lib2to3", "site-packages", "__pycache__"}


def embedded_source_files(packages: list[str]) -> list[Path]:
    """Python source files of the standard library ("stdlib") and the named installed packages."""
    files: list[Path] = []
    for package in packages:
        if package == "stdlib":
            roots = [Path(sysconfig.get_paths()["stdlib"])]
        else:
            spec = find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise DataError(f"data.embedded.packages: {package!r} is not an installed package")
            roots = [Path(location) for location in spec.submodule_search_locations]
        for root in roots:
            files.extend(
                sorted(
                    path
                    for path in root.rglob("*.py")
                    if not _SKIP_DIRS.intersection(path.relative_to(root).parts[:-1])
                )
            )
    return files


def _docstring_documents(
    files: tuple[tuple[str, int, int], ...], max_chars: int, min_sentences: int, num_proc: int
) -> Iterator[dict]:
    """One document per module: the prose of its docstrings in source order, until max_chars."""
    paths = [path for path, _, _ in files]
    total = 0
    each_module: Iterator[list[str]]
    with contextlib.ExitStack() as stack:
        if num_proc > 1:
            pool = stack.enter_context(multiprocessing.get_context().Pool(num_proc))
            each_module = pool.imap(_module_sentences, paths, chunksize=16)
        else:
            each_module = map(_module_sentences, paths)
        for sentences in each_module:
            if len(sentences) < min_sentences:
                continue
            yield {SENTENCES: sentences}
            total += sum(len(s) for s in sentences)
            if total >= max_chars:
                break


def _module_sentences(path: str) -> list[str]:
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
        return []
    sentences: list[str] = []
    for docstring in _docstrings(tree):
        for paragraph in _BLANK.split(docstring):
            if _is_prose(paragraph):
                sentences.extend(split_sentences(paragraph))
    return sentences


def _docstrings(node: ast.AST) -> Iterator[str]:
    """Docstrings of a module, its classes and functions, depth first in source order."""
    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        docstring = ast.get_docstring(node, clean=True)
        if docstring:
            yield docstring
        for child in node.body:
            yield from _docstrings(child)


_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|\$ |[-=~^*]{3,}\s*$|:param|:return|:type|\w+ : )")


def _is_prose(paragraph: str) -> bool:
    """Keep paragraphs of running text; drop doctests, section rules, parameter tables and code."""
    lines = [line for line in paragraph.splitlines() if line.strip()]
    if not lines or any(_CODE_LINE.match(line) for line in lines):
        return False
    text = " ".join(line.strip() for line in lines)
    words = text.split()
    if len(words) < 5 or not text[0].isupper():
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return letters / len(text) >= 0.85 and text.rstrip()[-1] in ".!?:"
