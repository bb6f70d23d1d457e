"""SQuAD v1.1 EM/F1 of bertkit next to the plain Hugging Face baseline: same checkpoint, split and recipe.

    python benchmarks/squad_accuracy.py --seeds 0
    python benchmarks/squad_accuracy.py --table-only

No SQuAD training file is available offline, so both train on 80% of the articles of dev-v1.1.json and
are scored on the other 20% (bertkit's `data.split_fraction=0.2 data.split_seed=42`; the baseline draws
the same articles by the same rule). For every seed it runs `accelerate launch bertkit/train.py
+experiment=squad_v1` and `benchmarks/hf_squad_baseline.py` one after the other on this machine. Results
accumulate in benchmarks/results/squad_accuracy.json (a seed/system already there is not run again); the
table goes to benchmarks/results/squad_accuracy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"
METRICS = ("exact_match", "f1")


def run_bertkit(seed: int, args) -> dict:
    run_dir = ROOT / "outputs" / "bench_squad" / f"seed{seed}"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", str(args.threads),
        str(ROOT / "bertkit" / "train.py"), "+experiment=squad_v1", f"model.name_or_path={args.model}",
        f"data.train_file={args.squad_file}", "data.split_fraction=0.2", "data.split_seed=42", f"seed={seed}",
        f"output_dir={run_dir}", "trainer.eval_every_epoch=false", "trainer.progress_bar=false",
        "trainer.resume=never", *args.overrides,
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "dev": {name: metrics["validation"][name] for name in METRICS},
        "train_seconds": metrics["throughput"]["train_seconds"],
        "tokens_per_second": metrics["throughput"]["tokens_per_second"],
        "steps": metrics["throughput"]["steps"],
    }


def run_baseline(seed: int, args) -> dict:
    out = RESULTS / f"baseline_squad_{seed}.json.tmp"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "hf_squad_baseline.py"), "--seed", str(seed),
        "--squad-file", str(args.squad_file), "--model", str(args.model), "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    result = json.loads(out.read_text())
    out.unlink()
    return {key: result[key] for key in ("dev", "train_seconds", "tokens_per_second", "steps")}


def table(records: list[dict], model: str) -> str:
    lines = [
        f"# SQuAD v1.1, held-out 20% of dev-v1.1.json articles: bertkit vs plain Hugging Face, from {model}",
        "",
        "| metric | seeds | bertkit | HF baseline | bertkit - HF |",
        "|---|---|---|---|---|",
    ]
    by_system = {s: {r["seed"]: r for r in records if r["system"] == s} for s in ("bertkit", "baseline")}
    seeds = sorted(set(by_system["bertkit"]) & set(by_system["baseline"]))
    for metric in METRICS if seeds else ():
        cells = [_cell([by_system[s][seed]["dev"][metric] for seed in seeds]) for s in ("bertkit", "baseline")]
        difference = statistics.mean(
            by_system["bertkit"][s]["dev"][metric] - by_system["baseline"][s]["dev"][metric] for s in seeds
        )
        lines.append(f"| {metric} | {len(seeds)} | {cells[0]} | {cells[1]} | {difference:+.2f} |")
    return "\n".join(lines) + "\n"


def _cell(values: list[float]) -> str:
    mean = statistics.mean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--systems", nargs="+", default=["bertkit", "baseline"], choices=["bertkit", "baseline"])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--squad-file", type=Path, default=SHARED / "data" / "squad" / "dev-v1.1.json")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra bertkit overrides (smoke runs: trainer.max_steps=...)")
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    store = RESULTS / "squad_accuracy.json"
    records = json.loads(store.read_text()) if store.exists() else []
    if not args.table_only:
        for seed in args.seeds:
            for system in args.systems:
                if any(r["seed"] == seed and r["system"] == system for r in records):
                    continue
                result = run_bertkit(seed, args) if system == "bertkit" else run_baseline(seed, args)
                records.append({"seed": seed, "system": system, **result})
                store.write_text(json.dumps(records, indent=1) + "\n")
                print(json.dumps(records[-1]), flush=True)
    (RESULTS / "squad_accuracy.md").write_text(table(records, args.model.name))
    print(table(records, args.model.name))


if __name__ == "__main__":
    main()
