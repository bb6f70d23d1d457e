"""What the benchmark scripts that train with bertkit share: the command that launches one run, a results file
that runs going on side by side add their records to, and a pool that keeps several runs going at once."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def write_results(name: str, data: Any, markdown: str) -> None:
    """A benchmark's figures as benchmarks/results/<name>.json and its table as <name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)


def train_command(threads: int, overrides: list[str]) -> list[str]:
    """`accelerate launch bertkit/train.py` on one process of `threads` CPU threads, with the run's own Hydra
    overrides (precision comes from trainer.mixed_precision, so the launcher's is left at no)."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", str(threads),
        str(ROOT / "bertkit" / "train.py"), *overrides,
    ]  # fmt: skip


def train(threads: int, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """One bertkit training run into run_dir; its metrics.json."""
    subprocess.run(train_command(threads, [*overrides, f"output_dir={run_dir}"]), check=True, cwd=ROOT)
    return json.loads((run_dir / "metrics.json").read_text())


class Records:
    """A JSON list of result records. Every addition re-reads the file under a lock, so runs of one pool and
    scripts running side by side keep each other's records; the file is replaced whole, never left half-written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> list[dict[str, Any]]:
        return json.loads(self.path.read_text()) if self.path.exists() else []

    def add(self, record: dict[str, Any]) -> None:
        with self._lock, self.path.with_suffix(".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the lock file closes
            records = [*self.read(), record]
            partial = self.path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(records, indent=1) + "\n")
            partial.replace(self.path)


def run_side_by_side(jobs: Iterable[Any], work: Callable[[Any], None], workers: int) -> None:
    """work(job) for every job, `workers` at a time, in the jobs' order. After a failure no new job starts; it
    is raised once the runs already going have finished."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, job) for job in jobs]
        for future in as_completed(futures):
            if future.exception() is not None:
                for waiting in futures:
                    waiting.cancel()
                break
    for future in futures:
        if not future.cancelled():
            future.result()
