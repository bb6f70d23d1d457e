"""Token ids of plain sentences without special tokens, fast: a word cache in front of the Rust tokenizer.

Corpus building tokenizes every sentence once, and that is most of its time. A corpus repeats its words:
35 novels are 5 million words but 30,000 distinct ones. So each distinct word goes through the tokenizer's
own WordPiece model once, and every later occurrence is a table lookup. A batch of sentences is cut into
words by one regular-expression pass over its joined text, the words become rows of the piece table in one
C-level pass over a dictionary, and numpy gathers the pieces: no Python work per word or per token.

Cutting a sentence into words is the one step done here instead of by the tokenizer, and only where it is
exactly the tokenizer's: a BERT tokenizer (BertNormalizer, BertPreTokenizer, WordPiece) and a sentence of
printable ASCII without any added token in it. There, normalization is lower-casing (when the tokenizer
lower-cases; accents and CJK characters cannot occur) and pre-tokenization splits at whitespace and makes
each ASCII punctuation mark a word of its own. Any other sentence, and any other tokenizer, goes through
`encode_batch_fast` unchanged. Tests compare the two on random text.
"""

from __future__ import annotations

import copy
import json
import re
from itertools import chain

import numpy as np
from transformers import PreTrainedTokenizerBase

# Rust's is_ascii_punctuation, which BertPreTokenizer isolates: !"#$%&'()*+,-./ :;<=>?@ [\]^_` {|}~
_WORD = re.compile(r"[^\s!-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")
# ASCII control characters other than tab, newline and carriage return: BertNormalizer deletes them (joining
# what they separate) where a whitespace split would cut there. Sentences with them take the tokenizer's path.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Joins the sentences of a batch into one text. It is a word of its own that no plain (ASCII) sentence
# contains, so it marks where each sentence's words end; its row in the piece table has no pieces.
_BOUNDARY = "\ue000"
_MAX_CACHED_WORDS = 2_000_000  # a bound on memory for corpora with endless distinct words (about 200 MB)


class PlainEncoder:
    """Callable: texts -> (ids, lengths), the ids of `tokenizer(texts, add_special_tokens=False)` end to end
    (int32) and how many of them belong to each text."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        # A copy, so that padding or truncation saved in a checkpoint's tokenizer.json does not apply (the
        # wrapper's __call__ lifts them too).
        self.backend = copy.deepcopy(tokenizer.backend_tokenizer)
        self.backend.no_padding()
        self.backend.no_truncation()
        spec = json.loads(self.backend.to_str())
        normalizer, pre_tokenizer = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
        self.cached = (
            normalizer.get("type") == "BertNormalizer"
            and pre_tokenizer.get("type") == "BertPreTokenizer"
            and spec["model"].get("type") == "WordPiece"
        )
        self.lowercase = bool(normalizer.get("lowercase"))
        added = [token["content"] for token in spec.get("added_tokens", [])]
        self._added = re.compile("|".join(map(re.escape, added)), re.IGNORECASE) if added else None
        self._words: _PieceTable | None = None

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if not self.cached:
            return _flatten(self._encode(texts))
        # "\n" is plain and ends any added token, so one check of the joined text usually settles the batch.
        if self._is_plain("\n".join(texts)):
            return self._cached_ids(texts)
        plain = np.fromiter(map(self._is_plain, texts), dtype=bool, count=len(texts))
        cached_ids, cached_lengths = self._cached_ids([text for text, p in zip(texts, plain, strict=True) if p])
        other_ids, other_lengths = _flatten(self._encode([text for text, p in zip(texts, plain, strict=True) if not p]))
        lengths = np.empty(len(texts), dtype=np.int64)
        lengths[plain], lengths[~plain] = cached_lengths, other_lengths
        from_cache = np.repeat(plain, lengths)
        ids = np.empty(len(from_cache), dtype=np.int32)
        ids[from_cache], ids[~from_cache] = cached_ids, other_ids
        return ids, lengths

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """The tokenizer's own path; encode_batch_fast skips the character offsets no instance uses (older
        tokenizers lack it)."""
        encode_batch = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        return [encoding.ids for encoding in encode_batch(texts, add_special_tokens=False)]

    def _is_plain(self, text: str) -> bool:
        return (
            text.isascii()
            and _CONTROL.search(text) is None
            and (self._added is None or self._added.search(text) is None)
        )

    def _cached_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self._words is None or len(self._words) > _MAX_CACHED_WORDS:
            self._words = _PieceTable(self.backend.model)
        if not texts:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        text = f" {_BOUNDARY} ".join(texts)
        words = _WORD.findall(text.lower() if self.lowercase else text)
        rows = np.fromiter(map(self._words.__getitem__, words), dtype=np.int64, count=len(words))
        piece_ids, starts, counts = self._words.arrays()
        counts = counts[rows]
        before = np.cumsum(counts) - counts  # tokens before each word
        total = int(before[-1] + counts[-1]) if len(rows) else 0
        # Every text but the last ends at a boundary word, the last one at the end of the batch.
        text_ends = np.append(before[rows == _PieceTable.BOUNDARY_ROW], total)
        lengths = np.diff(text_ends, prepend=0)
        # Position of each output token in the piece table: its word's first piece plus its place in the word.
        positions = np.arange(total) + np.repeat(starts[rows] - before, counts)
        return piece_ids[positions], lengths

    def __getstate__(self) -> dict:
        # Pickled into worker processes: each starts with an empty cache.
        return self.__dict__ | {"_words": None}


class _PieceTable(dict):
    """word -> row of a table of WordPiece ids; an unseen word goes through the WordPiece model on lookup."""

    BOUNDARY_ROW = 0

    def __init__(self, model) -> None:
        super().__init__({_BOUNDARY: self.BOUNDARY_ROW})
        self.model = model
        self.piece_ids: list[int] = []
        self.starts, self.counts = [0], [0]
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __missing__(self, word: str) -> int:
        pieces = [token.id for token in self.model.tokenize(word)]
        self[word] = row = len(self.starts)
        self.starts.append(len(self.piece_ids))
        self.counts.append(len(pieces))
        self.piece_ids += pieces
        self._arrays = None
        return row

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(piece ids, each row's first piece, each row's number of pieces) as arrays."""
        if self._arrays is None:
            self._arrays = (
                np.array(self.piece_ids, dtype=np.int32),
                np.array(self.starts, dtype=np.int64),
                np.array(self.counts, dtype=np.int64),
            )
        return self._arrays


def _flatten(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    return np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum())), lengths
