"""Knowledge distillation on SST-2 and MRPC: a teacher (all-MiniLM-L6-v2 fine-tuned by bertkit) and a student of
3 of its 6 layers, trained (a) on the labels alone and (b) by distillation; dev scores over seeds, parameters,
and CPU inference throughput of teacher vs student.

    python benchmarks/distillation.py --tasks mrpc --seeds 0 1 2
    python benchmarks/distillation.py --tasks sst2 --seeds 0
    python benchmarks/distillation.py --table-only

The teacher is `+experiment=glue_<task>` (seed 0, the standard recipe, last weights). Both students are
`+experiment=distill_glue data.task=<task> distill.student_layers=[0,2,4]` with the teacher's epochs: (a) with
`distill.teacher=null model.name_or_path=<teacher>`, (b) with `distill.teacher=<teacher>` (alpha 0.5, T 2).
Throughput: each model/ loaded with plain transformers, the dev texts in batches of 32 (padded to the batch's
longest) with --threads CPU threads, the best of 3 passes; the student's speed-up is a ratio measured in the same
run. Results accumulate in benchmarks/results/distillation.json; the table goes to distillation.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import runs  # beside this script
import torch
from accuracy import mean_and_spread
from glue_accuracy import HEADLINE
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"
TASKS = {"sst2": ("SST-2", ["sentence"], 3), "mrpc": ("MRPC", ["#1 String", "#2 String"], 5)}
"""task: (GLUE folder, dev text columns, epochs of its standard recipe)"""
STUDENT_LAYERS = "[0,2,4]"


def train(run_dir: Path, overrides: list[str], seed: int, args) -> dict:
    metrics = runs.train(args.threads, [
        *overrides, f"data.glue_dir={args.glue_dir}", f"seed={seed}", f"trainer.mixed_precision={args.precision}",
        "data.predict=false", "trainer.eval_every_epoch=false", "trainer.progress_bar=false", "trainer.resume=never",
    ], run_dir)  # fmt: skip
    return {"train_seconds": metrics["throughput"]["train_seconds"], "validation": metrics["validation"],
            "precision": args.precision}  # fmt: skip


def record(task: str, system: str, seed: int, result: dict) -> dict:
    scores = {name: 100 * result["validation"][name] for name in HEADLINE[task]}
    return {"task": task, "system": system, "seed": seed, "dev": scores, "train_seconds": result["train_seconds"],
            "precision": result["precision"]}  # fmt: skip


def teacher_dir(task: str) -> Path:
    return ROOT / "outputs" / "bench_distillation" / task / "teacher"


def run_system(task: str, system: str, seed: int, args) -> dict:
    epochs = TASKS[task][2]
    if system == "teacher":
        overrides = [f"+experiment=glue_{task}", f"model.name_or_path={args.model}"]
        return record(task, system, seed, train(teacher_dir(task), overrides, seed, args))
    teacher = teacher_dir(task) / "model"
    overrides = [
        "+experiment=distill_glue", f"data.task={task}", f"distill.student_layers={STUDENT_LAYERS}",
        f"trainer.num_epochs={epochs}", f"model.name_or_path={teacher}",
        "distill.teacher=null" if system == "student_plain" else f"distill.teacher={teacher}",
    ]  # fmt: skip
    run_dir = ROOT / "outputs" / "bench_distillation" / task / system / f"seed{seed}"
    return record(task, system, seed, train(run_dir, overrides, seed, args))


def dev_texts(task: str, glue_dir: Path) -> list[list[str]]:
    folder, columns, _ = TASKS[task]
    with open(glue_dir / folder / "dev.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [[row[column] for column in columns] for row in rows]


def throughput(model_dir: Path, texts: list[list[str]], threads: int) -> dict:
    """Parameters, and dev examples per second of plain transformers inference (best of 3 passes)."""
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    batches = [tokenizer(*zip(*texts[i : i + 32], strict=True), truncation=True, max_length=128, padding=True,
                         return_tensors="pt") for i in range(0, len(texts), 32)]  # fmt: skip
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            started = time.perf_counter()
            for batch in batches:
                model(**batch)
            best = min(best, time.perf_counter() - started)
    parameters = sum(p.numel() for p in model.parameters())
    return {"parameters": parameters, "examples_per_second": len(texts) / best}


def table(records: list[dict], speeds: dict) -> str:
    lines = ["# Distillation: a 3-layer student of all-MiniLM-L6-v2 (6 layers), GLUE dev, last weights", "",
             "| task | model | training precision | seeds | dev | train s | parameters | CPU examples/s | speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    names = {"teacher": "teacher (6 layers)", "student_plain": "(a) student, labels only",
             "student_distilled": "(b) student, distilled"}  # fmt: skip
    for task in TASKS:
        speed = speeds.get(task, {})
        for system, name in names.items():
            chosen = [r for r in records if r["task"] == task and r["system"] == system]
            if not chosen:
                continue
            metrics = HEADLINE[task]
            dev = " / ".join(f"{m} {mean_and_spread([r['dev'][m] for r in chosen])}" for m in metrics)
            seconds = mean_and_spread([r["train_seconds"] for r in chosen])
            model = speed.get("teacher" if system == "teacher" else "student", {})
            ratio = model.get("examples_per_second", 0) / speed["teacher"]["examples_per_second"] if model else 0
            measured = (f"{model['parameters'] / 1e6:.1f}M | {model['examples_per_second']:.0f} | {ratio:.2f}x"
                        if model else "- | - | -")  # fmt: skip
            # records from before --precision were fp32
            precision = "/".join(sorted({r.get("precision", "no").replace("no", "fp32") for r in chosen}))
            lines.append(f"| {task} | {name} | {precision} | {len(chosen)} | {dev} | {seconds} | {measured} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--glue-dir", type=Path, default=SHARED / "data" / "glue_data")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--precision", choices=["no", "bf16"], default="no", help="trainer.mixed_precision")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = RESULTS / "distillation.json"
    saved = json.loads(store.read_text()) if store.exists() else {"runs": [], "speed": {}}
    for task in [] if args.table_only else args.tasks:
        plan = [("teacher", 0)] + [
            (system, seed) for seed in args.seeds for system in ("student_plain", "student_distilled")
        ]
        for system, seed in plan:
            if any((r["task"], r["system"], r["seed"]) == (task, system, seed) for r in saved["runs"]):
                continue
            saved["runs"].append(run_system(task, system, seed, args))
            store.write_text(json.dumps(saved, indent=1) + "\n")
        student = (
            ROOT / "outputs" / "bench_distillation" / task / "student_distilled" / f"seed{args.seeds[0]}" / "model"
        )
        texts = dev_texts(task, args.glue_dir)
        saved["speed"][task] = {
            "teacher": throughput(teacher_dir(task) / "model", texts, args.threads),
            "student": throughput(student, texts, args.threads),
            "threads": args.threads,
        }
        store.write_text(json.dumps(saved, indent=1) + "\n")
    (RESULTS / "distillation.md").write_text(table(saved["runs"], saved["speed"]))
    print(table(saved["runs"], saved["speed"]))


if __name__ == "__main__":
    main()
