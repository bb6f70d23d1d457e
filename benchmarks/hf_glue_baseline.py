"""A plain Hugging Face GLUE fine-tuning script: the baseline bertkit's GLUE scores are compared with.

Deliberately independent of bertkit: its own TSV reading, tokenizer + AutoModelForSequenceClassification,
torch AdamW (no decay on biases and LayerNorm), linear warmup/decay from transformers, dynamic padding
with DataCollatorWithPadding, and the official metrics from scikit-learn/scipy. Same hyperparameters
as bertkit's `+experiment=glue_<task>` (lr 2e-5, batch 32, max length 128, 10% warmup, weight decay
0.01, 3 epochs; MRPC and WNLI 5).

    python benchmarks/hf_glue_baseline.py --task mrpc --glue-dir ../shared/data/glue_data \
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
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    set_seed,
)

# task: (folder, text columns, label column, label values (empty: regression), headerless columns, epochs)
TASKS = {
    "cola": ("CoLA", ["sentence"], "label", ["0", "1"], ["source", "label", "mark", "sentence"], 3),
    "sst2": ("SST-2", ["sentence"], "label", ["0", "1"], None, 3),
    "mrpc": ("MRPC", ["#1 String", "#2 String"], "Quality", ["0", "1"], None, 5),
    "stsb": ("STS-B", ["sentence1", "sentence2"], "score", [], None, 3),
    "rte": ("RTE", ["sentence1", "sentence2"], "label", ["entailment", "not_entailment"], None, 3),
    "wnli": ("WNLI", ["sentence1", "sentence2"], "label", ["0", "1"], None, 5),
}


def read(path: Path, task: str) -> tuple[list[list[str]], list[float]]:
    _, text_columns, label_column, labels, headerless, _ = TASKS[task]
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = headerless or rows.pop(0)
    texts = [[row[header.index(c)] for c in text_columns] for row in rows if row]
    raw = [row[header.index(label_column)] for row in rows if row]
    targets = [float(v) for v in raw] if not labels else [labels.index(v) for v in raw]
    return texts, targets


def encode(tokenizer, texts, targets, max_length):
    columns = list(zip(*texts, strict=True))
    encoded = tokenizer(*columns, truncation=True, max_length=max_length)
    return [{**{k: v[i] for k, v in encoded.items()}, "labels": targets[i]} for i in range(len(targets))]


def score(task: str, predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    if task == "cola":
        return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
    if task == "stsb":
        return {
            "pearson": float(pearsonr(predictions, references)[0]),
            "spearmanr": float(spearmanr(predictions, references)[0]),
        }
    scores = {"accuracy": float(accuracy_score(references, predictions))}
    if task == "mrpc":
        scores["f1"] = float(f1_score(references, predictions))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--glue-dir", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's standard recipe")
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    set_seed(args.seed)
    folder, _, _, labels, _, epochs = TASKS[args.task]
    epochs = args.epochs or epochs
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train = encode(tokenizer, *read(Path(args.glue_dir) / folder / "train.tsv", args.task), args.max_length)
    dev = encode(tokenizer, *read(Path(args.glue_dir) / folder / "dev.tsv", args.task), args.max_length)
    collate = DataCollatorWithPadding(tokenizer)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    dev_loader = DataLoader(dev, batch_size=128, collate_fn=collate)

    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=max(1, len(labels)), problem_type="regression" if not labels else None
    )
    training = fine_tune(model, train_loader, args.learning_rate, epochs)

    model.eval()
    logits, references = [], []
    with torch.no_grad():
        for batch in dev_loader:
            references.append(batch.pop("labels").numpy())
            logits.append(model(**batch).logits.float().numpy())
    logits, references = np.concatenate(logits), np.concatenate(references)
    predictions = logits[:, 0] if not labels else logits.argmax(-1)
    result = {
        "task": args.task,
        "seed": args.seed,
        "epochs": epochs,
        "dev": score(args.task, predictions, references),
        **training,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
