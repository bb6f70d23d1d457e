"""SQuAD, CoNLL-2003, OpenBookQA scores of bertkit next to plain Hugging Face baselines: same checkpoint, data, recipe.

    python benchmarks/accuracy.py squad --seeds 0       # SQuAD v1.1, held-out articles of dev-v1.1.json
    python benchmarks/accuracy.py ner --seeds 0         # CoNLL-2003, test F1 on eng.testb
    python benchmarks/accuracy.py openbookqa --seeds 0  # OpenBookQA (main), accuracy on dev.tsv
    python benchmarks/accuracy.py goemotions --seeds 0  # GoEmotions multi-label, micro/macro F1 on dev.tsv
    python benchmarks/accuracy.py ner --table-only

squad: no SQuAD training file is available offline, so both train on 80% of the articles of dev-v1.1.json
and are scored on the other 20% (bertkit's `data.split_fraction=0.2 data.split_seed=42`; the baseline draws
the same articles by the same rule). ner: eng.train, scored on eng.testb (bertkit also on eng.testa).
openbookqa: train.tsv, scored on dev.tsv; both leave out train question 12-1145, whose choices repeat the
"(D)" marker (bertkit's preset skips such rows with `data.bad_rows=skip`), so both train on 4956 questions.
For every seed it runs `accelerate launch bertkit/train.py +experiment=...` and the task's baseline script
(`hf_squad_baseline.py`, `hf_ner_baseline.py`, `hf_multiple_choice_baseline.py`) one after the other on this
machine. Results accumulate in benchmarks/results/<task>_accuracy.json (a seed/system already there is not
run again, so a long comparison can be done in pieces); the table goes to benchmarks/results/<task>_accuracy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from runs import Records, train  # beside this script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared"
SQUAD_FILE = SHARED / "data" / "squad" / "dev-v1.1.json"
CONLL_DIR = SHARED / "data" / "conll2003"
OBQA_DIR = SHARED / "data" / "openbookqa"
GOEMOTIONS_DIR = SHARED / "data" / "goemotions"
TASKS = {
    # task: (bertkit overrides, bertkit split scored, baseline script, its data arguments, metrics, title)
    "squad": (
        ["+experiment=squad_v1", f"data.train_file={SQUAD_FILE}", "data.split_fraction=0.2", "data.split_seed=42"],
        "validation", "hf_squad_baseline.py", ["--squad-file", str(SQUAD_FILE)], ("exact_match", "f1"),
        "SQuAD v1.1, held-out 20% of the articles of dev-v1.1.json",
    ),
    "ner": (
        ["+experiment=conll2003", f"data.train_file={CONLL_DIR / 'eng.train'}",
         f"data.validation_file={CONLL_DIR / 'eng.testa'}", f"data.test_file={CONLL_DIR / 'eng.testb'}"],
        "test", "hf_ner_baseline.py", ["--conll-dir", str(CONLL_DIR)], ("f1", "precision", "recall"),
        "CoNLL-2003 English NER, entity-level (seqeval default mode) on eng.testb",
    ),
    "openbookqa": (
        ["+experiment=openbookqa", f"data.train_file={OBQA_DIR / 'train.tsv'}",
         f"data.validation_file={OBQA_DIR / 'dev.tsv'}"],
        "validation", "hf_multiple_choice_baseline.py", ["--obqa-dir", str(OBQA_DIR)], ("accuracy",),
        "OpenBookQA (main), dev accuracy",
    ),
    "goemotions": (
        ["+experiment=goemotions", f"data.train_file={GOEMOTIONS_DIR / 'train.tsv'}",
         f"data.validation_file={GOEMOTIONS_DIR / 'dev.tsv'}",
         f"data.label_names_file={GOEMOTIONS_DIR / 'labels.txt'}"],
        "validation", "hf_multilabel_baseline.py", ["--data-dir", str(GOEMOTIONS_DIR)], ("f1_micro", "f1_macro"),
        "GoEmotions (multi-label, 28 labels), dev micro and macro F1 at threshold 0.5",
    ),
}  # fmt: skip


def run_bertkit(task: str, seed: int, args) -> dict:
    overrides, split, *_, metrics = TASKS[task][:5]
    run_dir = ROOT / "outputs" / f"bench_{task}" / f"seed{seed}"
    scores = train(args.threads, [
        *overrides, f"model.name_or_path={args.model}", f"seed={seed}", "trainer.eval_every_epoch=false",
        "trainer.progress_bar=false", "trainer.resume=never", *args.overrides,
    ], run_dir)  # fmt: skip
    return {
        "scores": {name: POINTS[task] * scores[split][name] for name in metrics},
        "train_seconds": scores["throughput"]["train_seconds"],
        "tokens_per_second": scores["throughput"]["tokens_per_second"],
        "steps": scores["throughput"]["steps"],
    }


def run_baseline(task: str, seed: int, args) -> dict:
    _, _, script, data_args, metrics, _ = TASKS[task]
    out = RESULTS / f"baseline_{task}_{seed}.json.tmp"
    command = [sys.executable, str(ROOT / "benchmarks" / script), *data_args, "--seed", str(seed),
               "--model", str(args.model), "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    result = json.loads(out.read_text())
    out.unlink()
    scores = result.get("dev") or result["test"]
    return {
        "scores": {name: POINTS[task] * scores[name] for name in metrics},
        **{key: result[key] for key in ("train_seconds", "tokens_per_second", "steps")},
    }


POINTS = {"squad": 1.0, "ner": 100.0, "openbookqa": 100.0, "goemotions": 100.0}
"""Every score in points (0-100): SQuAD's already are, seqeval's and the accuracy are fractions."""


def table(task: str, records: list[dict], model: str) -> str:
    *_, metrics, title = TASKS[task]
    lines = [f"# {title}: bertkit vs plain Hugging Face, from {model}", "",
             "| metric | seeds | bertkit | HF baseline | bertkit - HF |", "|---|---|---|---|---|"]  # fmt: skip
    by_system = {s: {r["seed"]: r for r in records if r["system"] == s} for s in ("bertkit", "baseline")}
    seeds = sorted(set(by_system["bertkit"]) & set(by_system["baseline"]))
    for metric in metrics if seeds else ():
        cells = [
            mean_and_spread([by_system[s][seed]["scores"][metric] for seed in seeds]) for s in ("bertkit", "baseline")
        ]
        difference = statistics.mean(
            by_system["bertkit"][s]["scores"][metric] - by_system["baseline"][s]["scores"][metric] for s in seeds
        )
        lines.append(f"| {metric} | {len(seeds)} | {cells[0]} | {cells[1]} | {difference:+.2f} |")
    return "\n".join(lines) + "\n"


def mean_and_spread(values: list[float]) -> str:
    """Mean over seeds, with the sample standard deviation when there are several."""
    mean = statistics.mean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--systems", nargs="+", default=["bertkit", "baseline"], choices=["bertkit", "baseline"])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra bertkit overrides")
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    store = Records(RESULTS / f"{args.task}_accuracy.json")  # the two systems may run side by side
    if not args.table_only:
        for seed in args.seeds:
            for system in args.systems:
                if any(r["seed"] == seed and r["system"] == system for r in store.read()):
                    continue
                result = (run_bertkit if system == "bertkit" else run_baseline)(args.task, seed, args)
                store.add({"seed": seed, "system": system, **result})
                print(json.dumps(result), flush=True)
    records = store.read()
    (RESULTS / f"{args.task}_accuracy.md").write_text(table(args.task, records, args.model.name))
    print(table(args.task, records, args.model.name))


if __name__ == "__main__":
    main()
