"""Corpus sources: documents and sentences from every kind of input, in a stable order."""

from __future__ import annotations

import json

import pytest

from bertkit.core.errors import DataError
from bertkit.readers.files import expand_paths
from bertkit.tasks.pretraining.config import CorpusSource, EmbeddedCorpusConfig, PretrainCorpusConfig
from bertkit.tasks.pretraining.corpus import SENTENCES, embedded_source_files, load_documents, split_sentences

from .conftest import SHARED, TINY_CORPUS, requires_shared


def documents_of(cache_dir, **settings) -> list[list[str]]:
    return load_documents(PretrainCorpusConfig(**settings), cache_dir)[SENTENCES]


def test_sentence_files_blank_lines_separate_documents(cache_dir):
    documents = documents_of(cache_dir, source=CorpusSource.sentence_files, paths=[str(TINY_CORPUS)])
    assert len(documents) == 6
    assert all(len(d) == 6 for d in documents)
    assert documents[0][0] == "The lighthouse keeper climbed the stairs every evening at dusk."


def test_prose_files_are_split_into_sentences(tmp_path, cache_dir):
    (tmp_path / "a.txt").write_text(
        "It was late. The rain had stopped, and Dr. Moreau\nwalked home slowly.\n\nA new paragraph starts here! "
        "Does it end?\n"
    )
    (tmp_path / "b.txt").write_text("Second file, second document. It has two sentences.\n")
    documents = documents_of(cache_dir, source=CorpusSource.prose_files, paths=[str(tmp_path)])
    assert documents == [
        [
            "It was late.",
            "The rain had stopped, and Dr. Moreau walked home slowly.",
            "A new paragraph starts here!",
            "Does it end?",
        ],
        ["Second file, second document.", "It has two sentences."],
    ]


def test_prose_files_drop_project_gutenberg_header_and_license(tmp_path, cache_dir):
    book = tmp_path / "pg1_book.txt"
    book.write_bytes(
        b"The Project Gutenberg EBook of A Book, by Someone.\r\n\r\nThis eBook is for the use of anyone.\r\n"
        b"*** START OF THIS PROJECT GUTENBERG EBOOK A BOOK ***\r\n\r\n"
        b"Produced by Some Volunteers.\r\nHTML version by Another.\r\n\r\n"
        b"Chapter one begins. The hero\r\nwakes up.\r\n\r\n"
        b"Produced by nobody: this line is the book's own.\r\n\r\n"
        b"End of the Project Gutenberg EBook of A Book, by Someone\r\n\r\n"
        b"*** END OF THIS PROJECT GUTENBERG EBOOK A BOOK ***\r\n"
        b"Section 1. General Terms of Use. By reading this you agree.\r\n"
    )
    (tmp_path / "plain.txt").write_text("No markers at all. Every line is kept.\n")
    documents = documents_of(cache_dir, source=CorpusSource.prose_files, paths=[str(tmp_path)])
    assert documents == [
        ["Chapter one begins.", "The hero wakes up.", "Produced by nobody: this line is the book's own."],
        ["No markers at all.", "Every line is kept."],
    ]
    kept = documents_of(cache_dir, source=CorpusSource.prose_files, paths=[str(tmp_path)], strip_boilerplate=False)
    assert kept[0][0] == "The Project Gutenberg EBook of A Book, by Someone."


def test_globs_and_directories_expand_in_sorted_order(tmp_path):
    for name in ("b.txt", "a.txt", "c.md", ".hidden"):
        (tmp_path / name).write_text("x\n")
    assert [p.name for p in expand_paths([str(tmp_path / "*.txt")])] == ["a.txt", "b.txt"]
    assert [p.name for p in expand_paths([str(tmp_path)])] == ["a.txt", "b.txt", "c.md"]
    with pytest.raises(DataError, match="does not exist"):
        expand_paths([str(tmp_path / "missing.txt")])


def test_local_jsonl_and_parquet_with_a_text_column(tmp_path, cache_dir):
    rows = [{"body": "First record. It has two sentences.", "id": 1}, {"body": "Second record here.", "id": 2}]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    documents = documents_of(cache_dir, source=CorpusSource.local, paths=[str(jsonl)], text_column="body")
    assert documents == [["First record.", "It has two sentences."], ["Second record here."]]

    import pandas

    parquet = tmp_path / "docs.parquet"
    pandas.DataFrame(rows).to_parquet(parquet)
    again = documents_of(cache_dir, source=CorpusSource.local, paths=[str(parquet)], text_column="body")
    assert again == documents

    with pytest.raises(DataError, match=r"no column 'text' \(data\.text_column\)"):
        documents_of(cache_dir, source=CorpusSource.local, paths=[str(jsonl)])


def test_rows_joined_into_documents_by_a_start_pattern(tmp_path, cache_dir):
    lines = [" = Alpha = ", "Alpha is first. It leads.", "", " = Beta = ", "Beta follows.", " == Sub == ", "More."]
    path = tmp_path / "wiki.jsonl"
    path.write_text("\n".join(json.dumps({"text": line}) for line in lines) + "\n")
    documents = documents_of(
        cache_dir, source=CorpusSource.local, paths=[str(path)], document_start_pattern=r"^ = [^=].* = $"
    )
    assert documents == [
        ["= Alpha =", "Alpha is first.", "It leads."],
        ["= Beta =", "Beta follows.", "== Sub ==", "More."],
    ]


def test_embedded_corpus_is_real_prose_in_a_fixed_order(cache_dir):
    settings = dict(embedded=EmbeddedCorpusConfig(packages=["stdlib"], max_chars=150_000), num_proc=2)
    first = documents_of(cache_dir, **settings)
    assert len(first) >= 20
    assert sum(len(s) for d in first for s in d) >= 150_000
    sentences = [s for d in first for s in d]
    assert not any(s.startswith(">>>") for s in sentences)
    words = sum(len(s.split()) for s in sentences)
    assert words / len(sentences) > 6  # sentences, not fragments of code
    assert documents_of(cache_dir, **dict(settings, num_proc=1)) == first  # same corpus however many workers


def test_embedded_unknown_package_is_named():
    with pytest.raises(DataError, match=r"data\.embedded\.packages: 'no_such_pkg' is not an installed package"):
        embedded_source_files(["no_such_pkg"])


def test_split_sentences_keeps_abbreviations_together():
    assert split_sentences("Mr. Smith arrived at 5 p.m. on Monday. He left early.") == [
        "Mr. Smith arrived at 5 p.m. on Monday.",
        "He left early.",
    ]


@pytest.mark.shared_data
@requires_shared
def test_gutenberg_prose_reads_every_novel(cache_dir):
    files = sorted((SHARED / "data" / "text" / "gutenberg").glob("*.txt"))[:3]
    documents = documents_of(cache_dir, source=CorpusSource.prose_files, paths=[str(f) for f in files])
    assert len(documents) == 3
    assert all(len(d) > 1000 for d in documents)
    sentences = [s for d in documents for s in d]
    assert not any("Project Gutenberg" in s for s in sentences)  # header and license are stripped


@pytest.mark.parametrize("num_proc", [1, 2])
def test_joined_rows_cross_batch_edges_exactly_like_a_naive_join(tmp_path, cache_dir, num_proc):
    """Rows are joined in batches of 1,000, reading ahead to finish a document that crosses the edge."""
    import random

    rng = random.Random(3)
    lines, expected = ["Leading row before any title."], [["Leading row before any title."]]
    while len(lines) < 2500:
        title = f" = Title {len(expected)} = "
        body = [f"Row {len(lines) + k} of document {len(expected)}." for k in range(rng.choice([1, 3, 40, 700]))]
        lines += [title, *body]
        expected.append([title.strip(), *body])
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps({"text": line}) for line in lines) + "\n")
    documents = documents_of(
        cache_dir, source=CorpusSource.local, paths=[str(path)], document_start_pattern=r"^ = [^=].* = $",
        num_proc=num_proc,
    )  # fmt: skip
    assert documents == expected
