"""A plain Hugging Face CoNLL-2003 NER fine-tuning script: the baseline bertkit's NER scores are compared with.

Deliberately independent of bertkit: its own column-file reading and IOB1 -> IOB2 conversion, tokenizer
with `is_split_into_words` (the first sub-token of each word carries the tag; sentences longer than 128
sub-tokens are truncated, as the common reference scripts do), AutoModelForTokenClassification, torch AdamW
(no decay on biases and LayerNorm), linear warmup/decay, DataCollatorForTokenClassification, and seqeval
(default mode) on eng.testb. Same hyperparameters as bertkit's `+experiment=conll2003` (lr 5e-5, batch 32,
3 epochs, 10% warmup, weight decay 0.01).

    python benchmarks/hf_ner_baseline.py --conll-dir ../shared/data/conll2003 \
        --model ../shared/models/all-MiniLM-L6-v2 --seed 0 --out result.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from hf_training import fine_tune  # the baselines' shared loop, beside this script
from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    set_seed,
)


def read(path: Path) -> list[tuple[list[str], list[str]]]:
    sentences, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if words:
                sentences.append((words, to_iob2(tags)))
                words, tags = [], []
            continue
        words.append(parts[0])
        tags.append(parts[-1])
    return sentences


def to_iob2(tags: list[str]) -> list[str]:
    out = []
    for tag in tags:
        if tag.startswith("I-") and (not out or out[-1] == "O" or out[-1][2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def encode(tokenizer, sentences, label_ids, max_length: int) -> tuple[list[dict], list[list[int | None]]]:
    encoded = tokenizer([w for w, _ in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    features, word_ids = [], []
    for i, (_, tags) in enumerate(sentences):
        ids, labels, previous = encoded.word_ids(i), [], None
        for w in ids:
            labels.append(-100 if w is None or w == previous else label_ids[tags[w]])
            previous = w
        features.append({**{k: encoded[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")},
                         "labels": labels})  # fmt: skip
        word_ids.append(ids)
    return features, word_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conll-dir", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (smoke tests)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    set_seed(args.seed)
    train_sentences = read(Path(args.conll_dir) / "eng.train")
    test_sentences = read(Path(args.conll_dir) / "eng.testb")
    labels = sorted({t for _, tags in train_sentences for t in tags}, key=lambda t: (t != "O", t[2:], t[:2]))
    label_ids = {t: i for i, t in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train, _ = encode(tokenizer, train_sentences, label_ids, args.max_length)
    test, test_word_ids = encode(tokenizer, test_sentences, label_ids, args.max_length)
    collate = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    test_loader = DataLoader(test, batch_size=128, collate_fn=collate)

    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )
    training = fine_tune(model, train_loader, args.learning_rate, args.epochs, args.max_steps)

    model.eval()
    predicted_ids = []
    with torch.no_grad():
        for batch in test_loader:
            predicted_ids += list(model(**batch).logits.argmax(-1).numpy())
    predictions, references = [], []
    for (words, tags), ids, row in zip(test_sentences, test_word_ids, predicted_ids, strict=True):
        tagged, previous = ["O"] * len(words), None  # words cut off by truncation stay O
        for position, w in enumerate(ids):
            if w is not None and w != previous:
                tagged[w] = labels[int(row[position])]
            previous = w
        predictions.append(tagged)
        references.append(tags)
    result = {
        "seed": args.seed,
        "test": {
            "precision": float(precision_score(references, predictions)),
            "recall": float(recall_score(references, predictions)),
            "f1": float(f1_score(references, predictions)),
            "accuracy": float(accuracy_score(references, predictions)),
        },
        **training,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
