"""MLM masking: rates, the 80/10/10 split, what is never masked, whole words, and the batch layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertTokenizerFast

from bertkit.core.batch import IGNORE_INDEX
from bertkit.tasks.pretraining.config import MaskingConfig
from bertkit.tasks.pretraining.masking import PretrainingCollator, VocabularyTables, mask_row

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(200)]
PIECES = [f"##p{i}" for i in range(50)]


@pytest.fixture(scope="module")
def tokenizer():
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS + PIECES)}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="module")
def tables(tokenizer):
    return VocabularyTables(tokenizer)


def random_instances(count: int, tokenizer, seed: int = 0, pieces: bool = False) -> list[dict]:
    """[CLS] A [SEP] B [SEP] with random words (and word pieces after some words)."""
    generator = torch.Generator().manual_seed(seed)
    word_ids = [tokenizer.convert_tokens_to_ids(w) for w in WORDS]
    piece_ids = [tokenizer.convert_tokens_to_ids(p) for p in PIECES]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    out = []
    for _ in range(count):

        def segment():
            ids = []
            for _ in range(int(torch.randint(3, 20, (1,), generator=generator))):
                ids.append(word_ids[int(torch.randint(len(word_ids), (1,), generator=generator))])
                if pieces:
                    for _ in range(int(torch.randint(0, 3, (1,), generator=generator))):
                        ids.append(piece_ids[int(torch.randint(len(piece_ids), (1,), generator=generator))])
            return ids

        a, b = segment(), segment()
        out.append({"input_ids": [cls, *a, sep, *b, sep], "next_sentence_label": len(out) % 2})
    return out


def test_masked_fraction_and_80_10_10_split(tokenizer, tables):
    collate = PretrainingCollator(tables, MaskingConfig(), seed=0)
    chosen = masked = randomised = kept = maskable = 0
    for seed in range(40):
        features = random_instances(64, tokenizer, seed)
        batch = collate(features)
        originals = collate.__class__(tables, MaskingConfig(mlm_probability=1e-9), seed=0)(features)["input_ids"]
        selected = batch["labels"] != IGNORE_INDEX
        real = (batch["attention_mask"] == 1) & ~tables.special[originals]
        chosen += int(selected.sum())
        maskable += int(real.sum())
        masked += int((batch["input_ids"][selected] == tokenizer.mask_token_id).sum())
        kept += int((batch["input_ids"][selected] == originals[selected]).sum())
        randomised += int(
            (
                (batch["input_ids"][selected] != originals[selected])
                & (batch["input_ids"][selected] != tokenizer.mask_token_id)
            ).sum()
        )
    assert maskable > 50_000
    assert chosen / maskable == pytest.approx(0.15, abs=0.005)
    assert masked / chosen == pytest.approx(0.8, abs=0.01)
    # A random replacement can draw the original token back (1 in |V|); it then counts as kept.
    assert randomised / chosen == pytest.approx(0.1, abs=0.01)
    assert kept / chosen == pytest.approx(0.1, abs=0.01)


def test_special_tokens_and_padding_are_never_masked(tokenizer, tables):
    collate = PretrainingCollator(tables, MaskingConfig(mlm_probability=0.9), seed=1)
    for seed in range(10):
        features = random_instances(32, tokenizer, seed)
        batch = collate(features)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            original = torch.tensor(feature["input_ids"])
            special = tables.special[original]
            assert (batch["labels"][row, :n][special] == IGNORE_INDEX).all()
            assert (batch["input_ids"][row, :n][special] == original[special]).all()
            assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
            assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()


def words_and_partial_words(ids: list[int], selected: list[bool], tables, sep_id: int) -> tuple[int, int]:
    """(words, words with some but not all pieces selected) of one instance."""
    words = partially = 0
    word: list[int] = []
    for position, token in enumerate(ids + [sep_id]):
        if word and (tables.word_start[token] or tables.special[token]):
            words += 1
            partially += len({selected[p] for p in word}) > 1
            word = []
        if position < len(ids) and not tables.special[token]:
            word.append(position)
    return words, partially


def test_whole_word_masking_masks_all_pieces_or_none(tokenizer, tables):
    collate = PretrainingCollator(tables, MaskingConfig(whole_word=True), seed=2)
    words_seen = partially = 0
    chosen = maskable = 0
    for seed in range(20):
        features = random_instances(32, tokenizer, seed, pieces=True)
        batch = collate(features)
        for row, feature in enumerate(features):
            ids = feature["input_ids"]
            selected = (batch["labels"][row, : len(ids)] != IGNORE_INDEX).tolist()
            words, partial = words_and_partial_words(ids, selected, tables, tokenizer.sep_token_id)
            words_seen, partially = words_seen + words, partially + partial
            chosen += sum(selected)
            maskable += int((~tables.special[torch.tensor(ids)]).sum())
    assert words_seen > 5000 and partially == 0
    assert 0.10 < chosen / maskable < 0.20


def masked_one_by_one(instances: list[list[int]], cfg: MaskingConfig, tables, generator):
    """mask_row on the instances laid end to end, split back into (inputs, labels) per instance."""
    inputs, labels = mask_row(np.array([t for ids in instances for t in ids], dtype=np.int32), cfg, tables, generator)
    assert inputs.dtype == labels.dtype == np.int32
    ends = np.cumsum([len(ids) for ids in instances])[:-1]
    return [part.tolist() for part in np.split(inputs, ends)], [part.tolist() for part in np.split(labels, ends)]


def test_static_masks_of_instances_masked_together_stay_within_each_instance(tokenizer, tables):
    """mask_row masks a document's instances as one row: no word runs across an instance boundary,
    even one that starts with a word piece, and every instance keeps its length."""
    words_seen = partially = chosen = maskable = 0
    for seed in range(10):
        instances = [f["input_ids"] for f in random_instances(32, tokenizer, seed, pieces=True)]
        piece = tokenizer.convert_tokens_to_ids(PIECES[0])
        instances = [[ids[0], piece, *ids[1:]] if row % 3 == 0 else ids for row, ids in enumerate(instances)]
        generator = torch.Generator().manual_seed(seed)
        inputs, labels = masked_one_by_one(instances, MaskingConfig(whole_word=True), tables, generator)
        for ids, masked, label in zip(instances, inputs, labels, strict=True):
            assert len(masked) == len(label) == len(ids)
            selected = [value != IGNORE_INDEX for value in label]
            assert all(label[p] == ids[p] for p in range(len(ids)) if selected[p])
            assert not any(selected[p] for p, token in enumerate(ids) if tables.special[token])
            words, partial = words_and_partial_words(ids, selected, tables, tokenizer.sep_token_id)
            words_seen, partially = words_seen + words, partially + partial
            chosen += sum(selected)
            maskable += sum(not tables.special[token] for token in ids)
    assert words_seen > 2000 and partially == 0
    assert 0.10 < chosen / maskable < 0.20


def test_batch_layout_segments_and_padding(tokenizer, tables):
    features = random_instances(5, tokenizer, seed=3)
    batch = PretrainingCollator(tables, MaskingConfig(), seed=0, pad_to_multiple_of=8)(features)
    assert batch["input_ids"].shape[1] % 8 == 0
    for row, feature in enumerate(features):
        ids = feature["input_ids"]
        first_sep = ids.index(tokenizer.sep_token_id)
        types = batch["token_type_ids"][row].tolist()
        assert types[: first_sep + 1] == [0] * (first_sep + 1)
        assert types[first_sep + 1 : len(ids)] == [1] * (len(ids) - first_sep - 1)
        assert sum(types[len(ids) :]) == 0
        assert batch["attention_mask"][row].sum() == len(ids)
    assert batch["next_sentence_label"].tolist() == [f["next_sentence_label"] for f in features]


def test_same_seed_same_masks_and_static_masks_pass_through(tokenizer, tables):
    features = random_instances(16, tokenizer, seed=4)
    first = PretrainingCollator(tables, MaskingConfig(), seed=9)(features)
    second = PretrainingCollator(tables, MaskingConfig(), seed=9)(features)
    assert torch.equal(first["labels"], second["labels"])

    ids, labels = masked_one_by_one(
        [f["input_ids"] for f in features], MaskingConfig(), tables, torch.Generator().manual_seed(0)
    )
    static = [dict(f, input_ids=i, labels=lab) for f, i, lab in zip(features, ids, labels, strict=True)]
    batch = PretrainingCollator(tables, MaskingConfig(), seed=123)(static)
    for row, label in enumerate(labels):
        assert batch["labels"][row, : len(label)].tolist() == label
        assert batch["input_ids"][row, : len(label)].tolist() == ids[row]
