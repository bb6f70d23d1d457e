"""The word-cached encoder gives exactly the ids of the tokenizer call, on any text, for any tokenizer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerFast

from bertkit.tasks.pretraining.word_cache import PlainEncoder

from .conftest import SHARED, requires_shared

# Printable ASCII, its whitespace and control characters, added-token text, accents, CJK, symbols, emoji,
# and the Unicode spaces and punctuation BertPreTokenizer treats like ASCII ones.
ALPHABET = (
    [chr(c) for c in range(32, 127)]
    + list("\t\n\r\x0b\x0c\x00\x07\x1f\x7f")
    + ["[CLS]", "[SEP]", "[MASK]", "[mask]", "[UNK]", "[PAD]"]
    + list("éÉüñçßİı中文字€£©°—–…«»¿¡\u00a0\u2028\u3000\ufffdﬁⅫ😀")
)
texts = st.lists(
    st.lists(st.sampled_from(ALPHABET), max_size=80).map("".join)
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "a" * 150, "Don't stop: 3.14-ish, e.g. U.S.A.!", "x" * 99 + " ok"]),
    min_size=1,
    max_size=12,
)


def reference(tokenizer, batch: list[str]) -> list[list[int]]:
    return tokenizer(batch, add_special_tokens=False, return_attention_mask=False)["input_ids"]


def encode(encoder: PlainEncoder, batch: list[str]) -> list[list[int]]:
    """The encoder's flat ids, split by its lengths, checking their types on the way."""
    ids, lengths = encoder(batch)
    assert ids.dtype == np.int32 and len(lengths) == len(batch) and lengths.sum() == len(ids)
    return [part.tolist() for part in np.split(ids, np.cumsum(lengths)[:-1])]


@pytest.fixture(scope="module")
def minilm():
    if not (SHARED / "models" / "all-MiniLM-L6-v2").is_dir():
        pytest.skip("../shared is absent")
    tokenizer = AutoTokenizer.from_pretrained(SHARED / "models" / "all-MiniLM-L6-v2")
    tokenizer.backend_tokenizer.enable_padding(length=16)  # as a tokenizer.json saved with padding would be
    tokenizer.backend_tokenizer.enable_truncation(max_length=8)
    return tokenizer


def cased_bert() -> PreTrainedTokenizerFast:
    """A cased BERT tokenizer over a small vocabulary: the cache must not lower-case for it."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ.,!'-"]
    vocab += ["the", "The", "##s", "##e", "##ing", "Don", "stop", "##'", "U", "S", "A", "##x", "x", "3", "14"]
    backend = Tokenizer(
        models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=20)
    )
    backend.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]")  # fmt: skip


@requires_shared
@given(batch=texts)
def test_uncased_bert_checkpoint_same_ids(minilm, batch):
    encoder = PlainEncoder(minilm)
    assert encoder.cached
    assert encode(encoder, batch) == reference(minilm, batch)
    assert encode(encoder, batch) == reference(minilm, batch)  # the second time from the cache


@given(batch=texts)
def test_cased_bert_same_ids(batch):
    tokenizer = cased_bert()
    assert encode(PlainEncoder(tokenizer), batch) == reference(tokenizer, batch)


def test_other_tokenizers_take_the_tokenizers_path():
    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    encoder = PlainEncoder(tokenizer)
    assert not encoder.cached
    assert encode(encoder, ["a b c", "ab"]) == reference(tokenizer, ["a b c", "ab"]) == [[1, 2, 0], [0]]


@requires_shared
def test_gutenberg_sentences_same_ids_and_cached(minilm):
    book = next(iter(sorted((SHARED / "data" / "text" / "gutenberg").glob("*.txt"))))
    lines = [line.strip() for line in book.read_text(encoding="utf-8").splitlines() if line.strip()][:3000]
    encoder = PlainEncoder(minilm)
    assert encode(encoder, lines) == reference(minilm, lines)
    assert 0 < len(encoder._words) < sum(len(line.split()) for line in lines) / 2  # words repeat


@requires_shared
def test_pickled_into_a_worker_it_starts_empty_and_agrees(minilm):
    encoder = PlainEncoder(minilm)
    encoder(["warm the cache up"])
    copy = pickle.loads(pickle.dumps(encoder))
    assert copy._words is None
    assert encode(copy, ["Warm, the cache UP!"]) == reference(minilm, ["Warm, the cache UP!"])


def test_empty_batch_and_empty_texts():
    encoder = PlainEncoder(cased_bert())
    ids, lengths = encoder([])
    assert len(ids) == len(lengths) == 0
    assert encode(encoder, ["", "the", ""]) == [[], [encoder.backend.token_to_id("the")], []]
