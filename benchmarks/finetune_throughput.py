"""Fine-tuning throughput on real GLUE sentences: bertkit's batches (dynamic padding to a multiple of 8,
optionally length-grouped) against batches padded to 128 tokens, as fixed-length pipelines do.

    python benchmarks/finetune_throughput.py                     # MRPC and SST-2, all-MiniLM-L6-v2
    python benchmarks/finetune_throughput.py --tasks mrpc --steps 20

Both arms fine-tune the same checkpoint on the same examples in the same order (bertkit's GLUE data recipe,
batch 32, lr 2e-5) and alternate step by step, so machine load hits both alike. Throughput counts real
(non-padding) tokens per second. After the timed steps each arm's model is scored on the dev set: padding
changes no result (attention masks it out), so the scores must agree within float noise. A third arm,
`trainer.group_by_length`, shows what sorting batches by length adds on top. Results go to
benchmarks/results/finetune_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from runs import write_results  # noqa: E402

from bertkit.tasks.classification.glue import GlueClassification, GlueDataConfig, GlueTask  # noqa: E402
from bertkit.training.batching import LengthGroupedSampler, example_lengths  # noqa: E402

SHARED = ROOT.parent / "shared"
BATCH, SEQ = 32, 128


def measure(task: str, args) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    cache = ROOT / "outputs" / "bench_cache"
    glue = GlueClassification(GlueDataConfig(task=GlueTask(task), glue_dir=str(args.glue_dir), predict=False))
    bundle = glue.build(tokenizer, cache)
    padded = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=SEQ, return_tensors="pt")
    loaders = {
        "padded to 128": DataLoader(
            bundle.train,
            batch_size=BATCH,
            shuffle=True,
            collate_fn=lambda f: dict(padded(f)),
            generator=torch.Generator().manual_seed(0),
        ),  # fmt: skip
        "bertkit": DataLoader(
            bundle.train,
            batch_size=BATCH,
            shuffle=True,
            collate_fn=bundle.collate_train,
            generator=torch.Generator().manual_seed(0),
        ),  # fmt: skip
        "bertkit, group_by_length": DataLoader(
            bundle.train,
            batch_size=BATCH,
            collate_fn=bundle.collate_train,
            sampler=LengthGroupedSampler(example_lengths(bundle.train), BATCH, seed=0),
        ),  # fmt: skip
    }
    models, optimizers, iterators = {}, {}, {}
    for arm in loaders:
        torch.manual_seed(0)
        models[arm] = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
        optimizers[arm] = torch.optim.AdamW(models[arm].parameters(), lr=2e-5, weight_decay=0.01)
        iterators[arm] = iter(loaders[arm])
        models[arm].train()
    seconds = dict.fromkeys(loaders, 0.0)
    real = dict.fromkeys(loaders, 0)
    for step in range(args.warmup + args.steps):
        for arm, model in models.items():
            batch = next(iterators[arm])
            started = time.perf_counter()
            model(**batch).loss.backward()
            optimizers[arm].step()
            optimizers[arm].zero_grad(set_to_none=True)
            if step >= args.warmup:
                seconds[arm] += time.perf_counter() - started
                real[arm] += int(batch["attention_mask"].sum())
    scores = {arm: dev_accuracy(models[arm], bundle, bundle.collate_eval)[0] for arm in models}
    # The same weights scored on dev batches padded both ways: padding must change no prediction.
    dynamic = dev_accuracy(models["bertkit"], bundle, bundle.collate_eval)[1]
    fixed = dev_accuracy(models["bertkit"], bundle, lambda f: dict(padded(f)))[1]
    base = real["padded to 128"] / seconds["padded to 128"]
    return {
        "task": task,
        "steps": args.steps,
        "dev_max_logit_difference_between_paddings": float(np.abs(dynamic - fixed).max()),
        "dev_predictions_identical_between_paddings": bool((dynamic.argmax(-1) == fixed.argmax(-1)).all()),
        "arms": {
            arm: {
                "real_tokens_per_second": real[arm] / seconds[arm],
                "speedup": real[arm] / seconds[arm] / base,
                "dev_accuracy": scores[arm],
            }  # fmt: skip
            for arm in loaders
        },
    }


@torch.no_grad()
def dev_accuracy(model, bundle, collate) -> tuple[float, np.ndarray]:
    """Dev accuracy and the dev logits, with batches made by `collate`."""
    model.eval()
    correct = total = 0
    logits = []
    for batch in DataLoader(bundle.evaluation["validation"], batch_size=128, collate_fn=collate):
        labels = batch.pop("labels")
        logits.append(model(**batch).logits.float().numpy())
        correct += int((logits[-1].argmax(-1) == labels.numpy()).sum())
        total += len(labels)
    return correct / total, np.concatenate(logits)


def table(rows: list[dict]) -> str:
    lines = ["| task | arm | real tokens/s | vs padded to 128 | dev accuracy after the timed steps |",
             "|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        for arm, r in row["arms"].items():
            lines.append(f"| {row['task']} | {arm} | {r['real_tokens_per_second']:,.0f} | {r['speedup']:.2f}x | "
                         f"{r['dev_accuracy']:.4f} |")  # fmt: skip
    for row in rows:
        lines.append(
            f"\n{row['task']}: the same weights on dev batches padded dynamically and to 128: predictions identical "
            f"{row['dev_predictions_identical_between_paddings']}, largest logit difference "
            f"{row['dev_max_logit_difference_between_paddings']:.2e}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mrpc", "sst2"], choices=["mrpc", "sst2"])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--glue-dir", type=Path, default=SHARED / "data" / "glue_data")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per arm")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    rows = [measure(task, args) for task in args.tasks]
    write_results("finetune_throughput", rows, table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
