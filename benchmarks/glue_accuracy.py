"""GLUE dev scores of bertkit next to the plain Hugging Face baseline, same checkpoint, data and recipe.

    python benchmarks/glue_accuracy.py --tasks mrpc rte stsb --seeds 0 1 2
    python benchmarks/glue_accuracy.py --tasks cola sst2 wnli --seeds 0
    python benchmarks/glue_accuracy.py --table-only

For every task and seed it runs `accelerate launch bertkit/train.py +experiment=glue_<task>` and
`benchmarks/hf_glue_baseline.py` one after the other on this machine. Results accumulate in
benchmarks/results/glue_accuracy.json (a task/seed/system already there is not run again, so a long
comparison can be done in pieces); the table, with mean and spread over seeds, goes to
benchmarks/results/glue_accuracy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from accuracy import mean_and_spread  # beside this script
from runs import train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"
HEADLINE = {
    "cola": ["matthews_correlation"],
    "sst2": ["accuracy"],
    "mrpc": ["f1", "accuracy"],
    "stsb": ["pearson", "spearmanr"],
    "rte": ["accuracy"],
    "wnli": ["accuracy"],
}


def run_bertkit(task: str, seed: int, args) -> dict:
    run_dir = ROOT / "outputs" / "bench_glue" / task / f"seed{seed}"
    metrics = train(args.threads, [
        f"+experiment=glue_{task}", f"model.name_or_path={args.model}", f"data.glue_dir={args.glue_dir}",
        f"seed={seed}",
        # Like the baseline: no test-set predictions, no per-epoch evaluation, no checkpoints.
        "data.predict=false", "trainer.eval_every_epoch=false", "trainer.progress_bar=false", "trainer.resume=never",
    ], run_dir)  # fmt: skip
    return {
        "dev": {name: metrics["validation"][name] for name in HEADLINE[task]},
        "train_seconds": metrics["throughput"]["train_seconds"],
        "tokens_per_second": metrics["throughput"]["tokens_per_second"],
        "steps": metrics["throughput"]["steps"],
    }


def run_baseline(task: str, seed: int, args) -> dict:
    out = RESULTS / f"baseline_{task}_{seed}.json.tmp"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "hf_glue_baseline.py"), "--task", task, "--seed", str(seed),
        "--glue-dir", str(args.glue_dir), "--model", str(args.model), "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    result = json.loads(out.read_text())
    out.unlink()
    return {key: result[key] for key in ("dev", "train_seconds", "tokens_per_second", "steps")}


def table(records: list[dict], model: str) -> str:
    lines = [
        f"# GLUE dev: bertkit vs plain Hugging Face, from {model}",
        "",
        "Each cell: mean over seeds (± sample standard deviation when n > 1), in points (x100).",
        "",
        "| task | metric | seeds | bertkit | HF baseline | bertkit - HF |",
        "|---|---|---|---|---|---|",
    ]
    for task, metrics in HEADLINE.items():
        for metric in metrics:
            by_system = {system: {} for system in ("bertkit", "baseline")}
            for r in records:
                if r["task"] == task:
                    by_system[r["system"]][r["seed"]] = 100 * r["dev"][metric]
            seeds = sorted(set(by_system["bertkit"]) & set(by_system["baseline"]))
            if not seeds:
                continue
            cells = [mean_and_spread([by_system[s][seed] for seed in seeds]) for s in ("bertkit", "baseline")]
            difference = statistics.mean(by_system["bertkit"][s] - by_system["baseline"][s] for s in seeds)
            lines.append(f"| {task} | {metric} | {len(seeds)} | {cells[0]} | {cells[1]} | {difference:+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mrpc", "rte", "stsb"], choices=sorted(HEADLINE))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--systems", nargs="+", default=["bertkit", "baseline"], choices=["bertkit", "baseline"])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--glue-dir", type=Path, default=SHARED / "data" / "glue_data")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    store = RESULTS / "glue_accuracy.json"
    records = json.loads(store.read_text()) if store.is_file() else []
    if not args.table_only:
        for task in args.tasks:
            for seed in args.seeds:
                for system in args.systems:
                    if any(r["task"] == task and r["seed"] == seed and r["system"] == system for r in records):
                        continue
                    started = time.perf_counter()
                    result = (run_bertkit if system == "bertkit" else run_baseline)(task, seed, args)
                    result.update(task=task, seed=seed, system=system, wall_seconds=time.perf_counter() - started)
                    records.append(result)
                    store.write_text(json.dumps(records, indent=2) + "\n")  # saved after every run
                    print(json.dumps(result), flush=True)
    text = table(records, args.model.name)
    (RESULTS / "glue_accuracy.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
