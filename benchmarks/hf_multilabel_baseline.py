"""A plain Hugging Face multi-label fine-tuning script on GoEmotions: the baseline bertkit's multi-label scores
are compared with.

Independent of bertkit: the TSVs read with Python's csv module (tab-separated, default quoting, as the files
quote texts holding `"`), label ids to 0/1 vectors over labels.txt, AutoModelForSequenceClassification with
problem_type=multi_label_classification (sigmoid + binary cross-entropy), the shared plain loop of
`hf_training.py`, a label predicted when its sigmoid reaches 0.5, scores from scikit-learn.

    python benchmarks/hf_multilabel_baseline.py --data-dir ../shared/data/goemotions \
        --model ../shared/models/all-MiniLM-L6-v2 --seed 0 --out result.json
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from hf_training import fine_tune  # the baselines' shared loop, beside this script
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed


def read(path: Path, count: int) -> tuple[list[str], list[list[float]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t") if row]
    texts = [row[0] for row in rows]
    targets = []
    for row in rows:
        vector = [0.0] * count
        for label in row[1].split(","):
            vector[int(label)] = 1.0
        targets.append(vector)
    return texts, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    set_seed(args.seed)
    folder = Path(args.data_dir)
    names = [line.strip() for line in (folder / "labels.txt").read_text().splitlines() if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def encode(texts: list[str], targets: list[list[float]]) -> list[dict]:
        encoded = tokenizer(texts, truncation=True, max_length=args.max_length)
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": targets[i]} for i in range(len(texts))]

    train_texts, train_targets = read(folder / "train.tsv", len(names))
    limit = args.max_train_samples or len(train_texts)
    train = encode(train_texts[:limit], train_targets[:limit])
    dev = encode(*read(folder / "dev.tsv", len(names)))
    collate = DataCollatorWithPadding(tokenizer)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(names), problem_type="multi_label_classification"
    )
    training = fine_tune(model, train_loader, args.learning_rate, args.epochs)

    model.eval()
    probabilities, references = [], []
    with torch.no_grad():
        for batch in DataLoader(dev, batch_size=128, collate_fn=collate):
            references.append(batch.pop("labels").numpy())
            probabilities.append(torch.sigmoid(model(**batch).logits.float()).numpy())
    predicted, gold = np.concatenate(probabilities) >= 0.5, np.concatenate(references) > 0.5
    dev_scores = {
        f"f1_{average}": float(f1_score(gold, predicted, average=average, zero_division=0))
        for average in ("micro", "macro")
    }
    result = {"seed": args.seed, "epochs": args.epochs, "examples": len(train), "dev": dev_scores, **training}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
