"""Long documents: truncation against windows on BBC News, at 128 and 64 tokens, over seeds: dev accuracy and
training time.

    python benchmarks/long_documents.py [--seeds 0 1 2] [--lengths 128 64] [--epochs 2]

../shared/data/bbc_news/bbc_news_train.csv (1,490 articles, 5 topics, 99.9% longer than 128 word pieces): the 50
repeated texts are left out (`data.drop_duplicates=true`) before a stratified 20% is held out as dev
(`data.split_seed=42`, the same for every run). all-MiniLM-L6-v2, lr 5e-5, batch 32, 10% warmup. Windows share
a quarter of their tokens (`data.window_stride`) and are combined by the mean of their logits. Every run is
`accelerate launch bertkit/train.py`, one after the other on this machine; results accumulate in
benchmarks/results/long_documents.json (a finished run is not repeated) and the table goes to
benchmarks/results/long_documents.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from accuracy import mean_and_spread  # the mean ± sd over seeds of the other accuracy tables, beside this script
from runs import Records, train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"
BBC = SHARED / "data" / "bbc_news" / "bbc_news_train.csv"


def run(mode: str, length: int, seed: int, args) -> dict:
    run_dir = ROOT / "outputs" / "bench_long_documents" / f"{mode}{length}" / f"seed{seed}"
    train(args.threads, [
        "data=custom", "model=pretrained", "trainer=finetune",
        f"model.name_or_path={args.model}", f"data.train_file={BBC}", "data.text_column=Text",
        "data.label_column=Category", "data.drop_duplicates=true", "data.validation_fraction=0.2",
        f"data.max_seq_length={length}", f"data.long_inputs={mode}", f"data.window_stride={length // 4}",
        "trainer.learning_rate=5e-5", f"trainer.num_epochs={args.epochs}", "trainer.eval_every_epoch=false",
        "trainer.progress_bar=false", "trainer.resume=never", f"seed={seed}",
    ], run_dir)  # fmt: skip
    return record(run_dir)


def record(run_dir: Path) -> dict:
    """A finished run's figures, from its metrics.json."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    train = metrics["data"]["train"]
    return {
        "accuracy": 100 * metrics["validation"]["accuracy"],
        "f1_macro": 100 * metrics["validation"]["f1_macro"],
        "train_seconds": metrics["throughput"]["train_seconds"],
        "steps": metrics["throughput"]["steps"],
        "train_windows": train.get("windows_trained_on") or train.get("examples"),
    }


def table(records: list[dict], model: str) -> str:
    """Accuracy over every seed; training time only over the seeds run with the same CPU threads (a run alone
    with 2 threads and two side by side with 1 each are not the same clock)."""
    threads = sorted({r["threads"] for r in records}, reverse=True)
    header = ["length", "inputs", "seeds", "accuracy", "macro F1", "steps"]
    header += [f"train s, {n} thread{'s' if n > 1 else ''} (seeds)" for n in threads]
    lines = [f"# BBC News dev accuracy: truncation vs windows, {model}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]  # fmt: skip
    groups: dict[tuple[int, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["length"], record["mode"]), []).append(record)
    for (length, mode), members in sorted(groups.items(), key=lambda item: (-item[0][0], item[0][1])):
        cells = [mean_and_spread([m[key] for m in members]) for key in ("accuracy", "f1_macro")]
        cells.append(f"{statistics.mean(m['steps'] for m in members):.0f}")
        for n in threads:
            timed = [m for m in members if m["threads"] == n]
            seeds = ",".join(str(m["seed"]) for m in sorted(timed, key=lambda m: m["seed"]))
            cells.append(f"{mean_and_spread([m['train_seconds'] for m in timed])} ({seeds})" if timed else "-")
        lines.append(f"| {length} | {mode} | {len(members)} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 64])
    parser.add_argument("--modes", nargs="+", default=["truncate", "windows"], choices=["truncate", "windows"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = Records(RESULTS / "long_documents.json")  # several seeds may run side by side
    for seed in [] if args.table_only else args.seeds:
        for length in args.lengths:
            for mode in args.modes:
                if any((r["seed"], r["length"], r["mode"]) == (seed, length, mode) for r in store.read()):
                    continue
                result = run(mode, length, seed, args)
                store.add({"seed": seed, "length": length, "mode": mode, "threads": args.threads, **result})
                print(json.dumps(result), flush=True)
    records = store.read()
    (RESULTS / "long_documents.md").write_text(table(records, args.model.name))
    print(table(records, args.model.name))


if __name__ == "__main__":
    main()
