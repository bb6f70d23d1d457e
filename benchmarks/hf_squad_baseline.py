"""A plain Hugging Face SQuAD v1.1 fine-tuning script: the baseline bertkit's SQuAD scores are compared with.

Deliberately independent of bertkit: its own JSON reading and article split (the same rule as bertkit's
`data.split_fraction`: a seeded draw of ceil(fraction x articles) with random.Random(split_seed).sample over
the article indices), its own features (tokenizer with `return_overflowing_tokens`, windows of 384 tokens,
stride 128, questions cut at 64 tokens), AutoModelForQuestionAnswering, torch AdamW (no decay on biases and
LayerNorm), linear warmup/decay, its own postprocessing (20 best starts/ends per window, answers of at most
30 tokens) and its own copy of the official EM/F1. Same hyperparameters as bertkit's `+experiment=squad_v1`
(lr 3e-5, batch 12, 2 epochs, 10% warmup, weight decay 0.01).

    python benchmarks/hf_squad_baseline.py --squad-file ../shared/data/squad/dev-v1.1.json \
        --model ../shared/models/all-MiniLM-L6-v2 --seed 0 --out result.json
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import re
import string
from pathlib import Path

import numpy as np
import torch
from hf_training import fine_tune  # the baselines' shared loop, beside this script
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DataCollatorWithPadding,
    set_seed,
)


def read_split(path: str, fraction: float, split_seed: int) -> tuple[list[dict], list[dict]]:
    articles = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    held = set(random.Random(split_seed).sample(range(len(articles)), math.ceil(fraction * len(articles))))
    train, evaluation = [], []
    for index, article in enumerate(articles):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                row = {"id": qa["id"], "question": qa["question"].lstrip(), "context": paragraph["context"],
                       "answers": qa["answers"]}  # fmt: skip
                (evaluation if index in held else train).append(row)
    return train, evaluation


def cut_questions(tokenizer, questions: list[str], max_query_length: int) -> list[str]:
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [q[: o[max_query_length - 1][1]] if len(o) > max_query_length else q
            for q, o in zip(questions, encoded["offset_mapping"], strict=True)]  # fmt: skip


def featurize(tokenizer, rows: list[dict], args, training: bool) -> tuple[list[dict], list[dict]]:
    questions = cut_questions(tokenizer, [r["question"] for r in rows], args.max_query_length)
    encoded = tokenizer(
        questions, [r["context"] for r in rows], truncation="only_second", max_length=args.max_length,
        stride=args.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
    )  # fmt: skip
    features, meta = [], []
    for i, source in enumerate(encoded["overflow_to_sample_mapping"]):
        sequence_ids = encoded.sequence_ids(i)
        offsets = [o if s == 1 else None for o, s in zip(encoded["offset_mapping"][i], sequence_ids, strict=True)]
        feature = {k: encoded[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")}
        if training:
            answer = rows[source]["answers"][0]
            first, last = answer["answer_start"], answer["answer_start"] + len(answer["text"])
            context = [t for t, o in enumerate(offsets) if o is not None]
            start = end = 0
            if offsets[context[0]][0] <= first and offsets[context[-1]][1] >= last:
                start = next(t for t in context if offsets[t][1] > first)
                end = next(t for t in reversed(context) if offsets[t][0] < last)
            feature["start_positions"], feature["end_positions"] = start, end
        features.append(feature)
        meta.append({"example": source, "offsets": offsets})
    return features, meta


def best_answers(rows, meta, start_logits, end_logits, n_best: int, max_answer_length: int) -> dict[str, str]:
    by_example = collections.defaultdict(list)
    for feature, info in enumerate(meta):
        by_example[info["example"]].append(feature)
    answers = {}
    for example, features in by_example.items():
        best_score, best_text = -math.inf, ""
        for f in features:
            offsets = meta[f]["offsets"]
            starts = np.argsort(start_logits[f][: len(offsets)])[::-1][:n_best]
            ends = np.argsort(end_logits[f][: len(offsets)])[::-1][:n_best]
            for s in starts:
                for e in ends:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = start_logits[f][s] + end_logits[f][e]
                    if score > best_score:
                        best_score, best_text = score, rows[example]["context"][offsets[s][0] : offsets[e][1]]
        answers[rows[example]["id"]] = best_text
    return answers


def normalize(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def f1_score(prediction: str, truth: str) -> float:
    p, t = normalize(prediction).split(), normalize(truth).split()
    same = sum((collections.Counter(p) & collections.Counter(t)).values())
    return 0.0 if same == 0 else 2 * same / (len(p) + len(t))


def squad_scores(rows: list[dict], answers: dict[str, str]) -> dict[str, float]:
    exact = f1 = 0.0
    for row in rows:
        truths = [a["text"] for a in row["answers"]]
        exact += max(float(normalize(answers[row["id"]]) == normalize(t)) for t in truths)
        f1 += max(f1_score(answers[row["id"]], t) for t in truths)
    return {"exact_match": 100 * exact / len(rows), "f1": 100 * f1 / len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad-file", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--split-fraction", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-query-length", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (smoke tests)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train_rows, eval_rows = read_split(args.squad_file, args.split_fraction, args.split_seed)
    train, _ = featurize(tokenizer, train_rows, args, training=True)
    evaluation, meta = featurize(tokenizer, eval_rows, args, training=False)
    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    eval_loader = DataLoader(evaluation, batch_size=64, collate_fn=collate)

    model = AutoModelForQuestionAnswering.from_pretrained(args.model)
    training = fine_tune(model, train_loader, args.learning_rate, args.epochs, args.max_steps)

    model.eval()
    start_logits, end_logits = [], []
    with torch.no_grad():
        for batch in eval_loader:
            output = model(**batch)
            start_logits += list(output.start_logits.float().numpy())
            end_logits += list(output.end_logits.float().numpy())
    answers = best_answers(eval_rows, meta, start_logits, end_logits, n_best=20, max_answer_length=30)
    result = {
        "seed": args.seed,
        "train_questions": len(train_rows),
        "eval_questions": len(eval_rows),
        "dev": squad_scores(eval_rows, answers),
        **training,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
