"""Augmentation of a small training set: copies of each training text with a fraction of its words replaced by
what a masked language model predicts in their place (contextual word replacement, Kobayashi 2018; Wu et al.
2019). Seeded per example and copy, cached by settings, model and rows, counted in the training statistics."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from bertkit import fingerprints
from bertkit.core.errors import ModelError, missing_checkpoint_message
from bertkit.core.layers import missing_weights
from bertkit.core.schema import input_path, require
from bertkit.core.seeding import fingerprint, stable_seed

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1
_WORD = re.compile(r"^(\W*)(\w.*?\w|\w)(\W*)$")
"""A whitespace-separated word: leading punctuation, the word itself, trailing punctuation ("(good)," -> good)."""


class AugmentMethod(StrEnum):
    none = "none"
    mlm = "mlm"  # replace words with a masked language model's predictions


@dataclass(kw_only=True, slots=True)
class AugmentConfig:
    """Augmented copies of the training examples (sentence tasks)."""

    method: AugmentMethod = AugmentMethod.none
    copies: int = 1
    """Augmented copies of each training example, added to the originals."""
    fraction: float = 0.15
    """Of each text's words, the fraction replaced in a copy (at least one)."""
    model: str | None = input_path(None)
    """The masked language model that predicts the replacements. None: model.name_or_path (it needs its
    masked-LM head)."""
    top_k: int = 10
    """A replacement is drawn from the model's k most likely whole words at that place, the original left out."""
    seed: int | None = None
    """None: the run's seed."""
    batch_size: int = 64

    def __post_init__(self) -> None:
        require(self.copies >= 1, "data.augment.copies", "must be >= 1")
        require(0 < self.fraction <= 1, "data.augment.fraction", "must be in (0, 1]")
        require(self.top_k >= 1, "data.augment.top_k", "must be >= 1")
        require(self.batch_size >= 1, "data.augment.batch_size", "must be >= 1")


def augmented(
    rows: datasets.Dataset, cfg: AugmentConfig, columns: list[str], cache_dir: Path
) -> tuple[datasets.Dataset, dict[str, int]]:
    """The training rows followed by their augmented copies (the same labels), read from the cache or made; and
    the counts (copies made, words replaced, words in the copied texts)."""
    assert cfg.model is not None and cfg.seed is not None, "config.load fills them in"
    settings = {key: value for key, value in asdict(cfg).items() if key != "batch_size"}
    model = (fingerprints.of_location(cfg.model), _revision(cfg.model))
    key = fingerprint(_FORMAT_VERSION, settings, model, rows._fingerprint, columns)
    folder = cache_dir / "augmented" / key
    if not folder.is_dir():
        copies, numbers = _copies(rows, cfg, columns)
        staging = folder.with_name(f"{key}.{os.getpid()}.tmp")
        copies.save_to_disk(str(staging))
        (staging / COUNTS).write_text(json.dumps(numbers))
        try:
            os.replace(staging, folder)  # whole or not at all
        except OSError:  # another run published the same copies first: theirs are kept
            shutil.rmtree(staging, ignore_errors=True)
    else:
        log.info("Augmented copies of the training set read from %s", folder)
    copies = datasets.load_from_disk(str(folder))
    numbers = json.loads((folder / COUNTS).read_text())
    return datasets.concatenate_datasets([rows, copies.cast(rows.features)]), numbers


COUNTS = "augment_counts.json"


def _copies(rows: datasets.Dataset, cfg: AugmentConfig, columns: list[str]) -> tuple[datasets.Dataset, dict[str, int]]:
    tokenizer, model = _masked_lm(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    made: dict[str, list[Any]] = {name: [] for name in rows.column_names}
    replaced = words = 0
    for copy in range(cfg.copies):
        for start in range(0, len(rows), cfg.batch_size):
            chunk = rows.select(range(start, min(start + cfg.batch_size, len(rows))))
            generators = [_generator(cfg.seed, start + i, copy) for i in range(len(chunk))]
            for name in rows.column_names:
                if name not in columns:
                    made[name].extend(chunk[name])
                    continue
                texts, changed, total = _replace(chunk[name], generators, tokenizer, model, cfg)
                made[name].extend(texts)
                replaced, words = replaced + changed, words + total
    log.info("Augmented %d training examples x %d copies with %s: %d of %d words replaced",
             len(rows), cfg.copies, cfg.model, replaced, words)  # fmt: skip
    numbers = {"augmented_examples": len(rows) * cfg.copies, "augmented_words_replaced": replaced,
               "augmented_words": words}  # fmt: skip
    return datasets.Dataset.from_dict(made, features=rows.features), numbers


def _revision(model: str) -> str | None:
    """A Hub model's revision (its files may change under the same name); None for a local folder."""
    if Path(model).expanduser().exists():
        return None
    try:
        return getattr(AutoConfig.from_pretrained(model), "_commit_hash", None)
    except (OSError, ValueError) as error:
        raise ModelError(missing_checkpoint_message("data.augment.model", model, error)) from None


def _generator(seed: int | None, example: int, copy: int) -> np.random.Generator:
    """The random choices of one copy of one example: the same whatever the batch it is made in."""
    return np.random.default_rng(stable_seed(seed, "augment", example, copy))


def _masked_lm(cfg: AugmentConfig) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """The masked LM and its tokenizer; refused when its masked-LM head would start random."""
    assert cfg.model is not None
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        model, info = AutoModelForMaskedLM.from_pretrained(cfg.model, output_loading_info=True)
    except (OSError, ValueError) as error:
        raise ModelError(missing_checkpoint_message("data.augment.model", cfg.model, error)) from None
    missing = missing_weights(info)
    if missing or tokenizer.mask_token is None:
        lacking = ", ".join(missing[:2]) or "no mask token"
        raise ModelError(
            f"data.augment.model={cfg.model!r} has no trained masked-LM head ({lacking}), so it cannot predict "
            "words: set data.augment.model to a masked language model (e.g. bert-base-uncased, or the model/ that "
            "make pretrain wrote)"
        )
    return tokenizer, model


def _replace(
    texts: list[str | None],
    generators: list[np.random.Generator],
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    cfg: AugmentConfig,
) -> tuple[list[str | None], int, int]:
    """The texts with words replaced; how many words were replaced, of how many."""
    split = [(text or "").split() for text in texts]
    chosen = [_choose(words, generator, cfg.fraction) for words, generator in zip(split, generators, strict=True)]
    masked = [
        " ".join(tokenizer.mask_token if i in picks else word for i, word in enumerate(words))
        for words, picks in zip(split, chosen, strict=True)
    ]
    encoded = tokenizer(masked, truncation=True, padding=True, return_tensors="pt").to(model.device)
    with torch.no_grad():
        logits = model(**encoded).logits
    replaced = 0
    out: list[str | None] = []
    for row, (words, picks, generator) in enumerate(zip(split, chosen, generators, strict=True)):
        positions = (encoded["input_ids"][row] == tokenizer.mask_token_id).nonzero().flatten().tolist()
        new = list(words)
        for index, position in zip(sorted(picks), positions, strict=False):  # masks cut off by truncation: kept
            word = _WORD.match(words[index])
            assert word is not None
            replacement = _draw(logits[row, position], word.group(2), index == 0, tokenizer, cfg.top_k, generator)
            if replacement is not None:
                new[index] = word.group(1) + _cased_like(replacement, word.group(2)) + word.group(3)
                replaced += 1
        out.append(" ".join(new) if texts[row] is not None else None)
    return out, replaced, sum(len(_candidates(words)) for words in split)


def _choose(words: list[str], generator: np.random.Generator, fraction: float) -> set[int]:
    """The positions of the words to replace: a fraction of those that are words, not bare punctuation."""
    candidates = _candidates(words)
    if not candidates:
        return set()
    count = max(1, round(fraction * len(candidates)))
    return {int(i) for i in generator.choice(candidates, size=count, replace=False)}


def starts_word(tokenizer: PreTrainedTokenizerBase) -> Callable[[str, bool], bool]:
    """Whether a vocabulary piece begins a word (at the start of the text, or after another word): WordPiece marks
    the pieces that continue one (##), byte-level BPE (Ġ) and SentencePiece (▁) those that begin one, except that
    byte-level BPE's first word has no space before it, so no Ġ."""
    pieces = tokenizer.tokenize("words apart")
    marker = next((mark for mark in ("Ġ", "▁") if any(piece.startswith(mark) for piece in pieces)), None)
    if marker is None:
        return lambda piece, at_start: not piece.startswith("##")
    if marker == "Ġ":
        return lambda piece, at_start: at_start or piece.startswith(marker)
    return lambda piece, at_start: piece.startswith(marker)


def _draw(
    logits: torch.Tensor,
    original: str,
    at_start: bool,
    tokenizer: PreTrainedTokenizerBase,
    top_k: int,
    generator: np.random.Generator,
) -> str | None:
    """One of the k most likely whole words at a masked place, other than the original, drawn by probability."""
    options, weights = [], []
    probabilities = logits.float().softmax(-1)
    whole = starts_word(tokenizer)
    for token_id in probabilities.topk(min(4 * top_k, len(probabilities))).indices.tolist():
        piece = tokenizer.convert_ids_to_tokens(token_id)
        word = tokenizer.convert_tokens_to_string([piece]).strip()
        if token_id in tokenizer.all_special_ids or not whole(piece, at_start) or not _WORD.match(word):
            continue
        if word.lower() == original.lower() or word in options:
            continue
        options.append(word)
        weights.append(float(probabilities[token_id]))
        if len(options) == top_k:
            break
    if not options:
        return None
    chances = np.asarray(weights) / sum(weights)
    return options[int(generator.choice(len(options), p=chances))]


def _cased_like(word: str, original: str) -> str:
    """An uncased model's prediction, capitalised or upper-cased like the word it replaces."""
    if original.isupper() and len(original) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if original[:1].isupper() else word


def _candidates(words: list[str]) -> list[int]:
    """The positions of the words that may be replaced: words, not bare punctuation."""
    return [i for i, word in enumerate(words) if _WORD.match(word)]
