"""Tiny random checkpoints of the encoders people fine-tune, built here from their configs with tokenizers trained
here on the test assets (no Hub): BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa-v2, XLM-RoBERTa and
ModernBERT, each with the tokenizer family it ships with (WordPiece, byte-level BPE, SentencePiece unigram)."""

from __future__ import annotations

from pathlib import Path

import transformers
from tokenizers import ByteLevelBPETokenizer, SentencePieceUnigramTokenizer, processors
from tokenizers.implementations import BertWordPieceTokenizer

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
ENCODERS: dict[str, tuple[str, str, dict]] = {
    # model type: (tokenizer family, tokenizer class, config sizes)
    "bert": ("wordpiece", "BertTokenizerFast", {**SMALL, "max_position_embeddings": 128}),
    "distilbert": ("wordpiece", "DistilBertTokenizerFast",
                   {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 128}),
    "electra": ("wordpiece", "ElectraTokenizerFast", {**SMALL, "embedding_size": 16, "max_position_embeddings": 128}),
    "albert": ("unigram", "AlbertTokenizerFast", {**SMALL, "embedding_size": 16, "max_position_embeddings": 128}),
    "deberta-v2": ("unigram", "DebertaV2TokenizerFast",
                   {**SMALL, "max_position_embeddings": 128, "type_vocab_size": 0, "relative_attention": True,
                    "position_biased_input": False, "pos_att_type": ["p2c", "c2p"], "position_buckets": 32}),
    "xlm-roberta": ("unigram", "XLMRobertaTokenizerFast", {**SMALL, "max_position_embeddings": 130}),
    "roberta": ("bytelevel", "RobertaTokenizerFast", {**SMALL, "max_position_embeddings": 130}),
    "modernbert": ("bytelevel", "PreTrainedTokenizerFast",
                   {**SMALL, "max_position_embeddings": 128, "global_attn_every_n_layers": 2, "local_attention": 16}),
}  # fmt: skip
BRACKETS = {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"}
ANGLES = {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}


def texts(assets: Path) -> list[str]:
    lines = (assets / "tiny_corpus.txt").read_text().splitlines()
    lines += [line for path in sorted((assets / "conll").glob("*.txt")) for line in path.read_text().splitlines()]
    lines += [line for path in sorted((assets / "glue").rglob("*.tsv")) for line in path.read_text().splitlines()]
    return [line for line in lines if line.strip()]


def _backend(family: str, specials: dict[str, str], corpus: list[str]):
    kinds = ("cls", "pad", "sep", "unk", "mask") if specials["cls"] == "<s>" else ("pad", "unk", "cls", "sep", "mask")
    order = [specials[k] for k in kinds]  # ids as the real vocabularies have them (RoBERTa's <s>=0, <pad>=1)
    if family == "wordpiece":
        tokenizer = BertWordPieceTokenizer(lowercase=True)
        tokenizer.train_from_iterator(corpus, vocab_size=500, min_frequency=1, special_tokens=order)
    elif family == "unigram":
        tokenizer = SentencePieceUnigramTokenizer()
        tokenizer.train_from_iterator(corpus, vocab_size=500, special_tokens=order, unk_token=specials["unk"])
    else:
        tokenizer = ByteLevelBPETokenizer()
        tokenizer.train_from_iterator(corpus, vocab_size=500, min_frequency=1, special_tokens=order)
    backend = tokenizer._tokenizer
    cls, sep = specials["cls"], specials["sep"]
    ids = {token: backend.token_to_id(token) for token in (cls, sep)}
    if family == "bytelevel" and cls == "<s>":
        backend.post_processor = processors.RobertaProcessing((sep, ids[sep]), (cls, ids[cls]), trim_offsets=True)
    else:
        pair = f"{cls} $A {sep} {sep} $B:1 {sep}:1" if cls == "<s>" else f"{cls} $A {sep} $B:1 {sep}:1"
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=pair, special_tokens=list(ids.items())
        )
    return backend


def build(model_type: str, folder: Path, assets: Path) -> Path:
    """A checkpoint folder: random masked-LM weights of a tiny `model_type` and its trained tokenizer."""
    family, tokenizer_class, sizes = ENCODERS[model_type]
    specials = ANGLES if model_type in ("roberta", "xlm-roberta") else BRACKETS
    backend = _backend(family, specials, texts(assets))
    tokens = {f"{kind}_token": token for kind, token in specials.items()}
    if tokenizer_class == "PreTrainedTokenizerFast":
        tokens["model_input_names"] = ["input_ids", "attention_mask"]
    if specials is ANGLES:
        tokens |= {"bos_token": "<s>", "eos_token": "</s>"}
    tokenizer = getattr(transformers, tokenizer_class)(tokenizer_object=backend, **tokens)
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if model_type in ("roberta", "xlm-roberta"):
        ids |= {"bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}
    if model_type == "modernbert":
        ids |= {"cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id,
                "bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}  # fmt: skip
    config = transformers.AutoConfig.for_model(model_type, vocab_size=len(tokenizer), **sizes, **ids)
    transformers.AutoModelForMaskedLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
