"""The plain GLUE recipe against each regularising technique alone, on small GLUE tasks: dev scores (mean and
spread over seeds) and training time.

    python benchmarks/regularisers.py --tasks rte mrpc stsb cola --seeds 0 1 2
    python benchmarks/regularisers.py --tasks sst2 --train-samples 500 --variants plain augment plain_9_epochs \
        --augment-model /path/to/a/masked-lm --seeds 0 1 2
    python benchmarks/regularisers.py --table-only

Each run is `accelerate launch bertkit/train.py +experiment=glue_<task>` on all-MiniLM-L6-v2 with the task's
standard recipe (lr 2e-5, batch 32, 3 epochs, MRPC 5), scored with the last weights (no per-epoch selection),
plus one technique's settings (VARIANTS), in bf16 autocast by default (--precision; 1.6x fp32's speed on this
CPU, the same for every variant). --workers runs go side by side, each on --threads CPU threads, task by task,
seed by seed. Results accumulate in benchmarks/results/regularisers.json (a finished task/variant/seed is not
run again; records name their precision), the table goes to benchmarks/results/regularisers.md. Augmentation
needs a masked LM (all-MiniLM-L6-v2 has no masked-LM head): --augment-model.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from accuracy import mean_and_spread  # beside this script
from glue_accuracy import HEADLINE
from runs import Records, run_side_by_side, train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"
VARIANTS = {
    "plain": [],
    "fgm": ["trainer.adversarial=fgm", "trainer.adversarial_epsilon=1.0"],
    "pgd": ["trainer.adversarial=pgd", "trainer.adversarial_epsilon=1.0", "trainer.adversarial_steps=3",
            "trainer.adversarial_step_size=0.3"],
    "rdrop": ["trainer.rdrop_alpha=1.0"],
    "llrd": ["trainer.layer_lr_decay=0.8"],
    "augment": ["data.augment.method=mlm", "data.augment.copies=2", "data.augment.fraction=0.15"],
    # augment's control on SST-2 (3 epochs): 2 copies make 3x the steps; is it the new text or the longer training?
    "plain_9_epochs": ["trainer.num_epochs=9"],
}  # fmt: skip


def recipe(task: str, variant: str, args) -> list[str]:
    """The overrides of the task's standard recipe with one variant's settings, at args.precision, without test
    predictions, per-epoch evaluation or resuming."""
    return [
        f"+experiment=glue_{task}", f"model.name_or_path={args.model}", f"data.glue_dir={args.glue_dir}",
        f"trainer.mixed_precision={args.precision}", "data.predict=false", "trainer.eval_every_epoch=false",
        "trainer.progress_bar=false", "trainer.resume=never", *VARIANTS[variant],
    ]  # fmt: skip


def run(task: str, variant: str, seed: int, args) -> dict:
    setting = f"n{args.train_samples}" if args.train_samples else "full"
    run_dir = ROOT / "outputs" / "bench_regularisers" / args.precision / f"{task}_{setting}" / variant / f"seed{seed}"
    extra = [f"data.max_train_samples={args.train_samples}"] if args.train_samples else []
    if variant == "augment":
        extra.append(f"data.augment.model={args.augment_model}")
    metrics = train(args.threads, [*recipe(task, variant, args), f"seed={seed}", *extra], run_dir)
    return {
        "task": task, "setting": setting, "variant": variant, "seed": seed, "precision": args.precision,
        "dev": {name: 100 * metrics["validation"][name] for name in HEADLINE[task]},
        "train_seconds": metrics["throughput"]["train_seconds"], "threads": args.threads,
        "steps": metrics["throughput"]["steps"], "train_examples": metrics["data"]["train"]["examples"],
    }  # fmt: skip


def table(records: list[dict], model: str) -> str:
    header = "| task | training set | precision | variant | seeds | score | vs plain | train s |"
    lines = [f"# GLUE dev, the plain recipe vs each technique alone, {model} (last weights)", "", header,
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    groups: dict[tuple[str, str, str, str], dict[int, dict]] = {}
    for record in records:
        key = (record["task"], record["setting"], record["precision"], record["variant"])
        groups.setdefault(key, {})[record["seed"]] = record
    for (task, setting, precision, variant), by_seed in sorted(groups.items(), key=lambda item: _order(item[0])):
        metric = HEADLINE[task][0]
        scores = [r["dev"][metric] for r in by_seed.values()]
        plain = groups.get((task, setting, precision, "plain"), {})
        shared = sorted(set(plain) & set(by_seed))
        versus = (
            f"{statistics.mean(by_seed[s]['dev'][metric] - plain[s]['dev'][metric] for s in shared):+.2f}"
            if shared and variant != "plain"
            else "-"
        )
        seconds = mean_and_spread([r["train_seconds"] for r in by_seed.values()])
        lines.append(f"| {task} ({metric}) | {setting} | {precision} | {variant} | {len(scores)} | "
                     f"{mean_and_spread(scores)} | {versus} | {seconds} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _order(key: tuple[str, str, str, str]) -> tuple:
    task, setting, precision, variant = key
    return task, setting, precision, list(VARIANTS).index(variant)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["rte", "mrpc", "stsb", "cola"], choices=sorted(HEADLINE))
    parser.add_argument("--variants", nargs="+", default=["plain", "fgm", "pgd", "rdrop", "llrd"], choices=VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train-samples", type=int, default=None, help="the first N training examples only")
    parser.add_argument("--augment-model", type=Path, default=None, help="the masked LM of the augment variant")
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--glue-dir", type=Path, default=SHARED / "data" / "glue_data")
    parser.add_argument("--precision", choices=["bf16", "no"], default="bf16", help="trainer.mixed_precision")
    parser.add_argument("--workers", type=int, default=2, help="runs going on at once")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: cores / workers)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    if "augment" in args.variants and args.augment_model is None and not args.table_only:
        parser.error("the augment variant needs --augment-model (a masked LM; all-MiniLM-L6-v2 has no MLM head)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = Records(RESULTS / "regularisers.json")
    setting = f"n{args.train_samples}" if args.train_samples else "full"
    done = {(r["task"], r["setting"], r["variant"], r["seed"], r["precision"]) for r in store.read()}
    plan = [
        (task, variant, seed) for task in args.tasks for seed in args.seeds for variant in args.variants
        if (task, setting, variant, seed, args.precision) not in done
    ]  # fmt: skip

    def run_and_record(job: tuple[str, str, int]) -> None:
        store.add(run(*job, args))
        print(f"finished {job}", flush=True)

    run_side_by_side([] if args.table_only else plan, run_and_record, args.workers)
    text = table(store.read(), args.model.name)
    (RESULTS / "regularisers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
