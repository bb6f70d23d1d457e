"""End-to-end `make pretrain`: its wall time split into start-up, preprocessing, training, evaluation and the rest.

    python benchmarks/pretrain_end_to_end.py                 # make pretrain, as a user types it
    python benchmarks/pretrain_end_to_end.py --args "trainer.max_steps=200"

Runs `make pretrain` with an empty cache (so preprocessing is done, not read back) and its own output
folder, timing the whole command, then splits that time with the run's metrics.json: preprocessing
(corpus reading, WordPiece training, tokenization, NSP instances), training (optimizer steps only),
evaluation (during training and the final one), model building and checkpoints (the rest of the run's
own clock), and what the run's clock does not see: start-up (interpreter, imports, launcher) and the
final writing of model/, its card and curves.png. Results go to benchmarks/results/pretrain_end_to_end.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def measure(extra_args: str) -> dict:
    with tempfile.TemporaryDirectory() as work:
        run_dir = Path(work) / "run"
        args = f"output_dir={run_dir} cache_dir={Path(work) / 'cache'} trainer.progress_bar=false {extra_args}"
        command = ["make", "--no-print-directory", "pretrain", f"ARGS={args.strip()}"]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        wall = time.perf_counter() - started
        metrics = json.loads((run_dir / "metrics.json").read_text())
    timings, throughput = metrics["timings_seconds"], metrics["throughput"]
    evaluation = throughput["eval_seconds_during_training"] + throughput["final_eval_seconds"]
    parts = {
        "preprocessing": timings["preprocessing"],
        "training": throughput["train_seconds"],
        "evaluation": evaluation,
        "model building, checkpoints": timings["total"] - timings["preprocessing"] - throughput["train_seconds"]
        - evaluation,
        "start-up, writing model/ and curves": wall - timings["total"],
    }  # fmt: skip
    return {"command": shlex.join(command), "wall_seconds": wall, "parts": parts, "steps": throughput["steps"],
            "tokens_per_second": throughput["tokens_per_second"], "heldout": metrics.get("heldout", {})}  # fmt: skip


def table(result: dict) -> str:
    lines = [f"`{result['command']}` ({os.cpu_count()} cores), {result['steps']} steps, "
             f"{result['tokens_per_second']:,.0f} tokens/s while training.", "",
             "| part | seconds | share |", "|---|---|---|"]  # fmt: skip
    for part, seconds in result["parts"].items():
        lines.append(f"| {part} | {seconds:.1f} | {100 * seconds / result['wall_seconds']:.1f}% |")
    lines.append(f"| **wall time** | **{result['wall_seconds']:.1f}** | 100% |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--args", default="", help="more overrides for make pretrain's ARGS")
    args = parser.parse_args()
    result = measure(args.args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pretrain_end_to_end.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = table(result)
    (RESULTS / "pretrain_end_to_end.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
