"""Fine-tune on every GLUE task whose data is present, one run each, then write one summary table.

    python -m bertkit.glue_suite --glue-dir ../shared/data/glue_data --model path/or/hub-id [-- overrides]

What `make finetune-glue TASK=all` runs. Each task is a separate `accelerate launch` of
`+experiment=glue_<task>` (so a failure in one task leaves the others' results), and the summary
(`glue_summary.md` and `glue_summary.json`) gathers the official dev scores of each run as `bertkit.summarize`
reads runs (config.yaml and metrics.json), naming the model each run's config.yaml says it trained.
With --summary-only, no training happens: the table is rebuilt from the runs already on disk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from bertkit import config, summarize
from bertkit.tasks.classification.glue import TASKS, GlueTask, task_is_present

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LAUNCH = (
    f"{shlex.quote(sys.executable)} -m accelerate.commands.launch --num_processes 1 --num_machines 1 "
    f"--mixed_precision no --dynamo_backend no --num_cpu_threads_per_process {os.cpu_count() or 1}"
)


def main(argv: list[str] | None = None) -> int:
    args, overrides = _parse(argv)
    tasks = [GlueTask(t) for t in args.tasks] if args.tasks else list(GlueTask)
    rows = []
    for task in tasks:
        if args.glue_dir is not None and not task_is_present(args.glue_dir, task):
            folder = Path(args.glue_dir) / TASKS[task].folder
            rows.append({"task": str(task), "status": f"skipped: no train/dev files in {folder}"})
            continue
        task_overrides = [f"+experiment=glue_{task}", f"model.name_or_path={args.model}"]
        if args.glue_dir is not None:
            task_overrides.append(f"data.glue_dir={args.glue_dir}")
        task_overrides += overrides
        run_dir = Path(config.load(_compose(task_overrides)).output_dir)
        status = "ok"
        if not args.summary_only:
            command = [*shlex.split(args.launch), str(ROOT / "bertkit" / "train.py"), *task_overrides]
            print(f"== GLUE {task}: {shlex.join(command)}", flush=True)
            returncode = subprocess.call(command)
            status = "ok" if returncode == 0 else f"failed (exit {returncode})"
        rows.append(_row(task, run_dir, status))
    used = sorted({row["model"] for row in rows if row.get("model")})
    summary = {"model": ", ".join(used) or args.model, "glue_dir": args.glue_dir, "overrides": overrides, "tasks": rows}
    summary["average"] = _average(rows)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "glue_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "glue_summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0 if all(r["status"] == "ok" or r["status"].startswith("skipped") for r in rows) else 1


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m bertkit.glue_suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bert-base-uncased", help="checkpoint: Hub id or folder")
    parser.add_argument("--glue-dir", default=None, help="GLUE in the original layout (default: the Hub)")
    parser.add_argument("--tasks", nargs="*", choices=[str(t) for t in GlueTask], help="default: all nine")
    parser.add_argument("--launch", default=DEFAULT_LAUNCH, help="command that runs bertkit/train.py")
    parser.add_argument("--output", default="outputs", help="folder of glue_summary.md / .json")
    parser.add_argument("--summary-only", action="store_true", help="only rebuild the table from earlier runs")
    return parser.parse_args(argv), overrides


def _compose(overrides: list[str]):
    config.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=overrides)


def _row(task: GlueTask, run_dir: Path, status: str) -> dict[str, Any]:
    """One task's scores, from its run's metrics.json; none for a run that failed (an earlier run's results
    there are not this run's), and the model its config.yaml says it trained."""
    row: dict[str, Any] = {"task": str(task), "status": status, "run_dir": str(run_dir)}
    metrics_file = run_dir / "metrics.json"
    if status != "ok" or not metrics_file.is_file():
        row["status"] = status if status != "ok" else f"no metrics.json in {run_dir}"
        return row
    run = summarize.read_run(run_dir)
    row["model"] = run["settings"].get("model.name_or_path")
    for split in TASKS[task].evaluation:
        found = {name: run["scores"].get(f"{split}/{name}") for name in TASKS[task].headline}
        row[split] = {name: value for name, value in found.items() if value is not None}
    return row


def task_score(row: dict[str, Any]) -> float | None:
    """One number per task, as GLUE averages them: the mean of its headline metrics (both MNLI splits)."""
    values = [v for split, scores in row.items() if split.startswith("validation") for v in scores.values()]
    return sum(values) / len(values) if values else None


def _average(rows: list[dict[str, Any]]) -> dict[str, Any]:
    found = {row["task"]: task_score(row) for row in rows if row["status"] == "ok"}
    scores = {task: score for task, score in found.items() if score is not None and not math.isnan(score)}
    mean = sum(scores.values()) / len(scores) if scores else None
    return {"score": mean, "tasks": sorted(scores)}


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# GLUE dev scores: {summary['model']}",
        "",
        f"Data: {summary['glue_dir'] or 'the Hub (nyu-mll/glue)'}; "
        f"overrides: {' '.join(summary['overrides']) or 'none'}",
        "",
        "| task | split | metrics | status | run |",
        "|---|---|---|---|---|",
    ]
    for row in summary["tasks"]:
        splits = [key for key in row if key.startswith("validation")] or ["-"]
        for split in splits:
            scores = ", ".join(f"{name} {100 * value:.2f}" for name, value in row.get(split, {}).items()) or "-"
            lines.append(f"| {row['task']} | {split} | {scores} | {row['status']} | {row.get('run_dir', '-')} |")
    average = summary["average"]
    if average["score"] is not None:
        lines += [
            "",
            f"Average over {len(average['tasks'])} task(s) ({', '.join(average['tasks'])}): "
            f"{100 * average['score']:.2f} (each task the mean of its metrics, as GLUE's score).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
