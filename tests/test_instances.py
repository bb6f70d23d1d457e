"""The NSP instance builder follows google-research/bert's create_pretraining_data semantics."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from bertkit.tasks.pretraining.config import PretrainCorpusConfig
from bertkit.tasks.pretraining.documents import TokenizedDocuments
from bertkit.tasks.pretraining.instances import truncate_seq_pair
from bertkit.tasks.pretraining.mlm_nsp import IS_NEXT, create_instances

MAX_SEQ_LENGTH = 128
DOCUMENTS = 500


def synthetic_documents(count: int, seed: int = 0) -> list[list[list[int]]]:
    """Documents whose every token names its (document, sentence): token = doc * 10_000 + sentence * 100 + k."""
    rng = random.Random(seed)
    return [
        [
            [doc * 10_000 + sentence * 100 + k for k in range(rng.randint(4, 24))]
            for sentence in range(rng.randint(20, 40))
        ]
        for doc in range(count)
    ]


def origin(token: int) -> tuple[int, int]:
    return token // 10_000, (token % 10_000) // 100


def as_column(documents: list[list[list[int]]], chunks: int = 3) -> pa.ChunkedArray:
    """The documents as a tokenized Arrow column, in several chunks as a dataset's cache files make it."""
    step = -(-len(documents) // chunks)
    kind = pa.list_(pa.list_(pa.int32()))
    return pa.chunked_array([pa.array(documents[i : i + step], type=kind) for i in range(0, len(documents), step)])


def build_all(documents, cfg: PretrainCorpusConfig):
    """(document, tokens of A, tokens of B, label, truncated) of every instance, via the Arrow column."""
    corpus = TokenizedDocuments(as_column(documents))
    instances = []
    for index in range(len(documents)):
        tokens, bounds = corpus.document(index)
        rng = random.Random(f"{cfg.seed}/{index}")
        for a_start, a_end, b_tokens, b_start, b_end, label, dropped in create_instances(
            bounds.tolist(), index, corpus, cfg, rng
        ):
            b_tokens = tokens if b_tokens is None else b_tokens
            instances.append((index, tokens[a_start:a_end].tolist(), b_tokens[b_start:b_end].tolist(), label, dropped))
    return instances


def test_documents_and_segments_read_from_the_arrow_column():
    documents = synthetic_documents(10, seed=2)
    corpus = TokenizedDocuments(as_column(documents))
    assert len(corpus) == 10
    for index, document in enumerate(documents):
        tokens, bounds = corpus.document(index)
        assert [tokens[s:e].tolist() for s, e in zip(bounds[:-1], bounds[1:], strict=True)] == document
        lengths = [len(sentence) for sentence in document]
        for fraction, need in ((0.0, 1), (0.5, 30), (0.99, 1000), (0.3, 10_000)):
            tokens, start, end = corpus.segment(index, fraction, need)
            first = int(fraction * len(document))
            # Whole sentences from the chosen one, stopping at the first that reaches `need` tokens.
            taken = next((k + 1 for k in range(first, len(document)) if sum(lengths[first : k + 1]) >= need),
                         len(document))  # fmt: skip
            assert tokens[start:end].tolist() == [t for sentence in document[first:taken] for t in sentence]


@pytest.fixture(scope="module")
def instances():
    return build_all(synthetic_documents(DOCUMENTS), PretrainCorpusConfig(max_seq_length=MAX_SEQ_LENGTH, seed=7))


def test_enough_pairs_and_balanced_nsp(instances):
    assert len(instances) >= 2000
    positives = sum(label == IS_NEXT for _, _, _, label, _ in instances) / len(instances)
    assert abs(positives - 0.5) <= 0.03


def test_no_instance_longer_than_max_seq_length(instances):
    assert max(len(a) + len(b) + 3 for _, a, b, _, _ in instances) <= MAX_SEQ_LENGTH
    assert all(a and b for _, a, b, _, _ in instances)


def test_segment_a_never_spans_documents(instances):
    for index, a, b, label, _ in instances:
        assert {origin(t)[0] for t in a} == {index}
        if label == IS_NEXT:
            assert {origin(t)[0] for t in b} == {index}
        else:
            other = {origin(t)[0] for t in b}
            assert len(other) == 1 and other != {index}


def test_positive_pairs_are_truly_consecutive(instances):
    documents = synthetic_documents(DOCUMENTS)
    for index, a, b, label, dropped in instances:
        if label != IS_NEXT:
            continue
        a_sentences = sorted({origin(t)[1] for t in a})
        b_sentences = sorted({origin(t)[1] for t in b})
        assert a_sentences == list(range(a_sentences[0], a_sentences[-1] + 1))
        assert b_sentences == list(range(b_sentences[0], b_sentences[-1] + 1))
        assert b_sentences[0] > a_sentences[-1]
        # B follows A directly; truncate_seq_pair may have trimmed tokens at the seam, never more than it cut.
        gap = range(a_sentences[-1] + 1, b_sentences[0])
        assert sum(len(documents[index][s]) for s in gap) <= dropped


def test_random_next_puts_unused_sentences_back():
    """Every sentence of a document reaches segment A or an IsNext B at least once (none are skipped)."""
    documents = synthetic_documents(8, seed=3)
    cfg = PretrainCorpusConfig(max_seq_length=MAX_SEQ_LENGTH, short_seq_prob=0.0, seed=1)
    covered: dict[int, set[int]] = {}
    for index, a, b, label, _ in build_all(documents, cfg):
        covered.setdefault(index, set()).update(origin(t)[1] for t in a)
        if label == IS_NEXT:
            covered[index].update(origin(t)[1] for t in b)
    for index, document in enumerate(documents):
        # Only sentences lost to truncation at the outer ends can be missing; most must be present.
        assert len(covered[index]) >= 0.8 * len(document)


def test_short_seq_prob_gives_shorter_targets():
    documents = synthetic_documents(30, seed=5)
    lengths = {
        p: [len(a) + len(b) for _, a, b, _, _ in build_all(documents, PretrainCorpusConfig(short_seq_prob=p))]
        for p in (0.0, 1.0)
    }
    assert sum(lengths[1.0]) / len(lengths[1.0]) < 0.8 * sum(lengths[0.0]) / len(lengths[0.0])


def truncated(a: list[int], b: list[int], max_tokens: int, rng: random.Random) -> tuple[list[int], list[int], int]:
    front_a, back_a, front_b, back_b = truncate_seq_pair(len(a), len(b), max_tokens, rng)
    return a[front_a : len(a) - back_a], b[front_b : len(b) - back_b], front_a + back_a + front_b + back_b


def test_truncate_seq_pair_trims_the_longer_side_from_both_ends():
    rng = random.Random(0)
    a, b, dropped = truncated(list(range(100)), list(range(1000, 1010)), 40, rng)
    assert dropped == 70 and len(a) + len(b) == 40
    assert b == list(range(1000, 1010))  # the shorter side is left alone
    assert a[0] > 0 and a[-1] < 99  # both ends of the longer side were cut
    assert a == list(range(a[0], a[0] + len(a)))
    assert truncate_seq_pair(20, 20, 40, rng) == (0, 0, 0, 0)


def one_token_at_a_time(length_a: int, length_b: int, max_tokens: int) -> tuple[int, int]:
    """The lengths google-research/bert's loop ends with: cut the longer list (the second on a tie)."""
    while length_a + length_b > max_tokens:
        if length_a > length_b:
            length_a -= 1
        else:
            length_b -= 1
    return length_a, length_b


@pytest.mark.parametrize("seed", range(5))
def test_truncate_seq_pair_ends_where_cutting_one_token_at_a_time_ends(seed):
    rng = random.Random(seed)
    fronts = cuts = 0
    for _ in range(500):
        a_length, b_length, max_tokens = rng.randint(1, 300), rng.randint(1, 300), rng.randint(2, 200)
        a, b, dropped = truncated(list(range(a_length)), list(range(10_000, 10_000 + b_length)), max_tokens, rng)
        assert (len(a), len(b)) == one_token_at_a_time(a_length, b_length, max_tokens)
        assert dropped == a_length + b_length - len(a) - len(b)
        for kept, first in ((a, 0), (b, 10_000)):
            if kept:
                fronts += kept[0] - first
        cuts += dropped
    assert 0.4 < fronts / cuts < 0.6  # each cut token comes off the front or the back with equal odds
