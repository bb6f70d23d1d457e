"""A plain Hugging Face OpenBookQA fine-tuning script: the baseline bertkit's multiple-choice scores are compared with.

Deliberately independent of bertkit: its own reading of the Main TSV files (the four options are cut out of the
`Choices` column at their `(A) `..`(D) ` markers; a row whose markers are not exactly A, B, C, D in that order,
such as train question 12-1145 with a second "(D)", is left out and counted, as bertkit's `data.bad_rows=skip`
does), each question encoded as four (stem, option) pairs cut at 128 tokens, DataCollatorForMultipleChoice for
dynamic padding, AutoModelForMultipleChoice (a fresh choice head on the encoder), torch AdamW (no decay on biases
and LayerNorm), linear warmup/decay, and accuracy on dev.tsv. Same hyperparameters as bertkit's
`+experiment=openbookqa` (lr 5e-5, batch 16, 3 epochs, 10% warmup, weight decay 0.01).

    python benchmarks/hf_multiple_choice_baseline.py --obqa-dir ../shared/data/openbookqa \
        --model ../shared/models/all-MiniLM-L6-v2 --seed 0 --out result.json
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import torch
from hf_training import fine_tune  # the baselines' shared loop, beside this script
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForMultipleChoice,
    AutoTokenizer,
    DataCollatorForMultipleChoice,
    set_seed,
)

LETTERS = ["A", "B", "C", "D"]
MARKER = re.compile(r"\(([A-Z])\) ")  # "(A) ", "(B) ", ...; the captured letter comes back from re.split


def read(path: Path) -> tuple[list[dict], int]:
    """Questions as {"stem", "options", "label"}, and how many rows were left out for malformed choices."""
    questions, skipped = [], 0
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            pieces = MARKER.split(row["Choices"])  # [text before the first marker, letter, text, letter, text, ...]
            letters, texts = pieces[1::2], [p.strip() for p in pieces[2::2]]
            answer = row["Answer Key"].strip()
            if pieces[0].strip() or letters != LETTERS or answer not in LETTERS:
                skipped += 1
                continue
            questions.append({"stem": row["Question Stem"].strip(), "options": texts, "label": LETTERS.index(answer)})
    return questions, skipped


def encode(tokenizer, questions: list[dict], max_length: int) -> list[dict]:
    """One feature per question: every tokenizer field holds one list per option."""
    choices = len(LETTERS)
    firsts = [q["stem"] for q in questions for _ in range(choices)]
    seconds = [option for q in questions for option in q["options"]]
    encoded = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    features = []
    for i, question in enumerate(questions):
        feature = {key: values[i * choices : (i + 1) * choices] for key, values in encoded.items()}
        feature["labels"] = question["label"]
        features.append(feature)
    return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--obqa-dir", required=True, help="folder with the Main train.tsv and dev.tsv")
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-train-samples", type=int, default=None, help="train on the first N questions only")
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (smoke tests)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    set_seed(args.seed)
    train_questions, train_skipped = read(Path(args.obqa_dir) / "train.tsv")
    dev_questions, dev_skipped = read(Path(args.obqa_dir) / "dev.tsv")
    if args.max_train_samples is not None:
        train_questions = train_questions[: args.max_train_samples]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train = encode(tokenizer, train_questions, args.max_length)
    dev = encode(tokenizer, dev_questions, args.max_length)
    collate = DataCollatorForMultipleChoice(tokenizer)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    dev_loader = DataLoader(dev, batch_size=64, collate_fn=collate)

    model = AutoModelForMultipleChoice.from_pretrained(args.model, dtype=torch.float32)
    training = fine_tune(model, train_loader, args.learning_rate, args.epochs, args.max_steps)

    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in dev_loader:
            labels = batch.pop("labels")
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
    result = {
        "seed": args.seed,
        "train_questions": len(train_questions),
        "dev": {"accuracy": correct / len(dev_questions), "questions": len(dev_questions)},
        "skipped_rows": {"train": train_skipped, "dev": dev_skipped},
        **training,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
