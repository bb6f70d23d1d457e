"""The trained WordPiece vocabulary: BERT's layout, and the same vocabulary for the same corpus every time."""

from __future__ import annotations

import json

from bertkit.settings import TokenizerConfig
from bertkit.tasks.pretraining.config import CorpusSource, PretrainCorpusConfig
from bertkit.tokenizer import SPECIAL_TOKENS

from .conftest import TINY_CORPUS, wordpiece


def tiny_corpus() -> PretrainCorpusConfig:
    return PretrainCorpusConfig(source=CorpusSource.sentence_files, paths=[str(TINY_CORPUS)])


def test_trained_vocabulary_is_the_same_on_every_run(tmp_path):
    """tokenizers' trainer alone numbers its '##' pieces in hash-map order (huggingface/tokenizers#1794);
    trained three times from scratch, the vocabulary must not change."""
    settings = TokenizerConfig(vocab_size=300, min_frequency=1)
    vocabularies = []
    for attempt in range(3):
        tokenizer = wordpiece(settings, tiny_corpus(), tmp_path / f"cache{attempt}")
        vocabularies.append(json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"])
    assert vocabularies[0] == vocabularies[1] == vocabularies[2]


def test_trained_tokenizer_has_bert_layout(cache_dir):
    tokenizer = wordpiece(TokenizerConfig(vocab_size=300, min_frequency=1), tiny_corpus(), cache_dir)
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == SPECIAL_TOKENS
    assert sorted(tokenizer.all_special_tokens) == sorted(SPECIAL_TOKENS)  # no '##x' piece is special
    encoded = tokenizer("The keeper climbed.", "He saw ##ships.")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
    assert "##ships" not in tokens  # '##' in raw text is text, not a piece marker
    assert encoded["token_type_ids"][-1] == 1 and encoded["token_type_ids"][0] == 0
