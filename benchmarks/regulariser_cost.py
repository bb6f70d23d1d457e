"""What each regularising technique costs per training step, as a ratio to the plain recipe measured in the same
run: short runs of every variant on one GLUE task, interleaved round by round so that a machine that gets
slower or faster treats them alike, the median seconds per step of each.

    python benchmarks/regulariser_cost.py --task mrpc --steps 30 --rounds 3

Each run is regularisers.py's (`+experiment=glue_<task>`, all-MiniLM-L6-v2, the variant's settings, bf16
autocast by default) stopped after --steps optimizer steps, on --threads CPU threads. The table goes to
benchmarks/results/regulariser_cost.md, the runs to regulariser_cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from regularisers import recipe
from runs import train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"


def seconds_per_step(task: str, variant: str, round_: int, args) -> float:
    run_dir = ROOT / "outputs" / "bench_regulariser_cost" / task / variant / f"round{round_}"
    metrics = train(args.threads, [*recipe(task, variant, args), f"trainer.max_steps={args.steps}"], run_dir)
    return metrics["throughput"]["train_seconds"] / metrics["throughput"]["steps"]


def table(measured: dict[str, list[float]], args) -> str:
    plain = statistics.median(measured["plain"])
    lines = [f"# Cost per training step vs the plain recipe: {args.task}, {args.model.name}, {args.precision}, "
             f"{args.threads} thread(s), {args.steps} steps x {args.rounds} rounds (median)", "",
             "| variant | s/step (median) | rounds | x plain |", "|---|---|---|---|"]  # fmt: skip
    for variant, values in measured.items():
        median = statistics.median(values)
        lines.append(f"| {variant} | {median:.3f} | {len(values)} | {median / plain:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="mrpc")
    parser.add_argument("--variants", nargs="+", default=["plain", "fgm", "pgd", "rdrop", "llrd"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", choices=["bf16", "no"], default="bf16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--glue-dir", type=Path, default=SHARED / "data" / "glue_data")
    args = parser.parse_args()
    variants = ["plain", *(v for v in args.variants if v != "plain")]
    measured: dict[str, list[float]] = {variant: [] for variant in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            measured[variant].append(seconds_per_step(args.task, variant, round_, args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"task": args.task, "precision": args.precision, "threads": args.threads, "steps": args.steps,
              "seconds_per_step": measured}  # fmt: skip
    (RESULTS / "regulariser_cost.json").write_text(json.dumps(record, indent=1) + "\n")
    text = table(measured, args)
    (RESULTS / "regulariser_cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
