"""The modern pretraining recipe against `make pretrain`'s, at equal training time on the same corpus: held-out
masked-LM accuracy at 15% masking.

    python benchmarks/modern_recipe.py      # pretrain_tiny; pretrain_modern with a BERT, with a ModernBERT
    python benchmarks/modern_recipe.py --threads 2

1. `+experiment=pretrain_tiny` runs its schedule over --tiny-steps steps (2,000: `make pretrain`'s) with no time
   limit, so that it ends its decay; its training time is the budget.
2. Each modern arm first runs 40 steps to measure its seconds per step, then trains for as many steps as fit
   the budget (its warmup-stable-decay schedule needs a step count, not a time limit, to end in its decay).
3. Every final model is scored by one evaluate-only run on the same held-out documents (pretrain_tiny's split),
   as MLM-only instances with 15% of the tokens masked, so the 30%-masking arms are not scored on their own
   harder task.

All arms share the tokenizer pretrain_tiny trains (same corpus, same settings, one cache). Results go to
benchmarks/results/modern_recipe.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from runs import train  # beside this script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ARMS = {
    "pretrain_tiny": ["+experiment=pretrain_tiny"],
    "pretrain_modern": ["+experiment=pretrain_modern"],
    "pretrain_modern, modernbert_tiny": ["+experiment=pretrain_modern", "model=modernbert_tiny"],
}
PROBE_STEPS = 40


def run_dir(arm: str, part: str) -> Path:
    return ROOT / "outputs" / "bench_modern_recipe" / arm.replace(", ", "_") / part


def arm_result(arm: str, budget: float | None, args) -> dict:
    """Train one arm (within `budget` seconds of training, when given), then score it at 15% masking."""
    steps = [f"trainer.max_steps={args.tiny_steps}", "trainer.max_minutes=null"]
    if budget is not None:
        probe = train(args.threads, [*ARMS[arm], f"trainer.max_steps={PROBE_STEPS}", "trainer.eval_every=null",
                                     "trainer.resume=never"], run_dir(arm, "probe"))  # fmt: skip
        seconds_per_step = probe["throughput"]["train_seconds"] / probe["throughput"]["steps"]
        steps = [f"trainer.max_steps={int(budget / seconds_per_step)}"]
    trained = train(args.threads, [*ARMS[arm], *steps, "trainer.resume=never"], run_dir(arm, "train"))
    scored = train(args.threads, ["+experiment=pretrain_tiny", "data.objective=mlm", "model=pretrained",
                                  f"model.name_or_path={run_dir(arm, 'train') / 'model'}", "trainer.max_steps=0",
                                  "data.masking.mlm_probability=0.15", "trainer.resume=never"],
                   run_dir(arm, "score"))  # fmt: skip
    return {
        "arm": arm,
        "steps": trained["throughput"]["steps"],
        "train_seconds": trained["throughput"]["train_seconds"],
        "tokens_per_second": trained["throughput"]["tokens_per_second"],
        "own_heldout": trained["heldout"],
        "mlm_accuracy_at_15": scored["heldout"]["mlm_accuracy"],
        "mlm_loss_at_15": scored["heldout"]["mlm_loss"],
        "majority_baseline_at_15": scored["heldout"]["mlm_majority_baseline_accuracy"],
    }


def table(rows: list[dict], threads: int) -> str:
    lines = ["| recipe | optimizer steps | training seconds | tokens/s | held-out MLM accuracy at 15% | "
             "MLM loss at 15% |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['arm']} | {r['steps']:,} | {r['train_seconds']:.0f} | {r['tokens_per_second']:,.0f} | "
                     f"{100 * r['mlm_accuracy_at_15']:.2f}% | {r['mlm_loss_at_15']:.3f} |")  # fmt: skip
    baseline = 100 * rows[0]["majority_baseline_at_15"]
    return "\n".join(lines) + f"\n\nOne process, {threads} CPU threads; majority-token baseline {baseline:.2f}%.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tiny-steps", type=int, default=2000, help="pretrain_tiny's steps, which set the budget")
    args = parser.parse_args()
    reference = arm_result("pretrain_tiny", None, args)
    rows = [reference, *(arm_result(arm, reference["train_seconds"], args) for arm in list(ARMS)[1:])]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "modern_recipe.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "modern_recipe.md").write_text(table(rows, args.threads))
    print(table(rows, args.threads))


if __name__ == "__main__":
    main()
