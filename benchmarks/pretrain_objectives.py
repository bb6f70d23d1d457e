"""The three pretraining objectives under `make pretrain`'s 10-minute budget: does each one learn?

    python benchmarks/pretrain_objectives.py                        # make pretrain ARGS="data.objective=X", each X
    python benchmarks/pretrain_objectives.py --objectives sop        # one of them
    python benchmarks/pretrain_objectives.py --collect mlm=outputs/pretrain_tiny/seed42   # a run already made
    python benchmarks/pretrain_objectives.py --table-only

Each objective runs as a user types it (`make pretrain ARGS="data.objective=X"`, its own output folder), one after
another on this machine. The bar (issue 16): held-out MLM accuracy at least twice the majority-token baseline for
every objective, and for the sentence-pair tasks an accuracy at least 10 points above their majority baseline.
Results accumulate in benchmarks/results/pretrain_objectives.json (.md for the table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OBJECTIVES = ("mlm_nsp", "mlm", "sop")
PAIR_TASK = {"mlm_nsp": "nsp", "mlm": None, "sop": "sop"}


def measure(objective: str) -> dict:
    run_dir = ROOT / "outputs" / "bench_objectives" / objective
    args = f"data.objective={objective} output_dir={run_dir} trainer.progress_bar=false trainer.resume=never"
    started = time.perf_counter()
    subprocess.run(["make", "--no-print-directory", "pretrain", f"ARGS={args}"], check=True, cwd=ROOT,
                   env=dict(os.environ, HF_HUB_OFFLINE="1"))  # fmt: skip
    return collect(objective, run_dir, wall=time.perf_counter() - started)


def collect(objective: str, run_dir: Path, wall: float | None = None) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    heldout, task = metrics["heldout"], PAIR_TASK[objective]
    result = {
        "objective": objective,
        "steps": metrics["throughput"]["steps"],
        "train_seconds": metrics["throughput"]["train_seconds"],
        "run_seconds": wall if wall is not None else metrics["timings_seconds"]["total"],
        "mlm_accuracy": heldout["mlm_accuracy"],
        "mlm_majority_baseline_accuracy": heldout["mlm_majority_baseline_accuracy"],
        "perplexity": heldout["perplexity"],
        "mlm_learns": heldout["mlm_accuracy"] >= 2 * heldout["mlm_majority_baseline_accuracy"],
    }
    if task is not None:
        accuracy, baseline = heldout[f"{task}_accuracy"], heldout[f"{task}_majority_baseline_accuracy"]
        result |= {"pair_task": task, "pair_accuracy": accuracy, "pair_majority_baseline_accuracy": baseline,
                   "pair_task_learns": accuracy >= baseline + 0.10}  # fmt: skip
    return result


HEADER = ("objective", "steps", "run (s, its own clock)", "MLM accuracy", "majority baseline", "x baseline",
          "perplexity", "pair task", "accuracy", "majority baseline", "+ points")  # fmt: skip


def table(records: list[dict]) -> str:
    lines = [
        f'`make pretrain ARGS="data.objective=X"` on {os.cpu_count()} cores, held-out documents of the embedded '
        "corpus. Bar: MLM accuracy >= 2x its majority baseline, pair task >= its majority baseline + 10 points.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    for r in sorted(records, key=lambda r: OBJECTIVES.index(r["objective"])):
        ratio = r["mlm_accuracy"] / r["mlm_majority_baseline_accuracy"]
        cells = [r["objective"], r["steps"], f"{r['run_seconds']:.0f}", f"{r['mlm_accuracy']:.4f}",
                 f"{r['mlm_majority_baseline_accuracy']:.4f}", f"{ratio:.2f}x", f"{r['perplexity']:.1f}"]  # fmt: skip
        if "pair_task" in r:
            gain = 100 * (r["pair_accuracy"] - r["pair_majority_baseline_accuracy"])
            cells += [r["pair_task"], f"{r['pair_accuracy']:.4f}", f"{r['pair_majority_baseline_accuracy']:.4f}",
                      f"{gain:+.1f}"]  # fmt: skip
        else:
            cells += ["-"] * 4
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES))
    parser.add_argument("--collect", nargs="*", default=[], metavar="OBJECTIVE=RUN_DIR")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    store = RESULTS / "pretrain_objectives.json"
    records = {r["objective"]: r for r in (json.loads(store.read_text()) if store.exists() else [])}
    for item in args.collect:
        objective, run_dir = item.split("=", 1)
        records[objective] = collect(objective, Path(run_dir))
    if not args.table_only and not args.collect:
        for objective in args.objectives:
            records[objective] = measure(objective)
            store.write_text(json.dumps(list(records.values()), indent=1) + "\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(list(records.values()), indent=1) + "\n")
    (RESULTS / "pretrain_objectives.md").write_text(table(list(records.values())))
    print(table(list(records.values())))


if __name__ == "__main__":
    main()
