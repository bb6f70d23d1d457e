"""Peak memory of building pretraining data: the Gutenberg corpus against ten copies of it.

    python benchmarks/corpus_memory.py                 # both sizes, each in a fresh process and cache
    python benchmarks/corpus_memory.py --copies 10     # one size (what each measurement runs)

Preprocessing must stream: ten times the text may take ten times as long, but peak resident memory
(from /usr/bin/time -v, as the issue asks) must stay within 1.5x. Each size runs in its own process with
an empty cache: corpus reading, WordPiece training, tokenization and NSP instances, nothing else.
Results go to benchmarks/results/corpus_memory.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runs import write_results

ROOT = Path(__file__).resolve().parent.parent
GUTENBERG = ROOT.parent / "shared" / "data" / "text" / "gutenberg"


def built_data(copies: int, work: Path, overrides: list[str]) -> tuple[Any, float]:
    """A `pretrain_tiny` run's data (with `overrides`) on `copies` copies of the novels, built in this process
    under `work`: the task data, and the seconds the vocabulary and the data took."""
    sys.path.insert(0, str(ROOT))
    from hydra import compose, initialize_config_dir

    from bertkit import config, tokenizer
    from bertkit.tasks.registry import task_for

    corpus = work / "corpus"
    linked_copies(copies, corpus)
    config.register_configs()
    overrides = ["+experiment=pretrain_tiny", "data.source=prose_files", f"data.paths=[{corpus}]", *overrides,
                 f"cache_dir={work / 'cache'}"]  # fmt: skip
    with initialize_config_dir(config_dir=config.CONFIG_DIR, version_base="1.3"):
        run = config.load(compose("train", overrides=overrides))
    started = time.perf_counter()
    task = task_for(run.data)
    tok = tokenizer.build(run.tokenizer, run.model, lambda: task.training_text(work / "cache"), work / "cache")
    return task.build(tok, work / "cache"), time.perf_counter() - started


def preprocess(copies: int, work: Path) -> dict:
    """Build the data of a pretraining run on `copies` copies of the corpus (in this process)."""
    bundle, seconds = built_data(copies, work, [])
    cache_bytes = sum(f.stat().st_size for f in (work / "cache").rglob("*") if f.is_file())
    instance_tokens = int(bundle.stats["train"]["mean_instance_tokens"] * bundle.stats["train"]["instances"])
    instance_bytes = sum(Path(f["filename"]).stat().st_size for f in bundle.train.cache_files)
    return {"copies": copies, "seconds": seconds, "stats": bundle.stats["train"], "cache_bytes": cache_bytes,
            "instance_tokens": instance_tokens, "instance_cache_bytes": instance_bytes}  # fmt: skip


def linked_copies(copies: int, corpus: Path) -> None:
    """`copies` copies of the Gutenberg novels in `corpus`, as symbolic links (nothing is copied)."""
    corpus.mkdir()
    for copy in range(copies):
        for book in sorted(GUTENBERG.glob("*.txt")):
            (corpus / f"{copy:02d}_{book.name}").symlink_to(book)


def measure(copies: int, script: str = __file__) -> dict:
    """Run one size of `script` under /usr/bin/time -v in a fresh process and cache; peak RSS as the OS
    counted it, with the JSON the script printed last."""
    with tempfile.TemporaryDirectory() as work:
        command = ["/usr/bin/time", "-v", sys.executable, script, "--copies", str(copies), "--work", work]
        result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        if result.returncode != 0:
            raise SystemExit(result.stderr[-3000:])
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", result.stderr).group(1)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        return {**report, "peak_rss_mb": peak_kb / 1024, "wall_clock": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, help="measure in this process (what each measurement runs)")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.copies is not None:
        print(json.dumps(preprocess(args.copies, args.work)))
        return
    rows = [measure(copies) for copies in (1, 10)]
    ratio = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    lines = [
        "| corpus | documents | tokens | instances | peak RSS | wall | whole cache | instance cache, bytes/token |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        stats = row["stats"]
        lines.append(
            f"| Gutenberg x{row['copies']} | {stats['documents']:,} | {stats['tokens']:,} | {stats['instances']:,} | "
            f"{row['peak_rss_mb']:,.0f} MB | {row['wall_clock']} | {row['cache_bytes'] / 2**20:,.0f} MB | "
            f"{row['instance_cache_bytes'] / max(1, row['instance_tokens']):.2f} |"
        )
    lines.append(
        f"\nPeak RSS ratio x10 / x1: {ratio:.2f} (target: at most 1.5). Instances are stored as "
        "int32 token ids without padding: 4 bytes a token plus list offsets."
    )
    write_results("corpus_memory", {"runs": rows, "peak_rss_ratio": ratio}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
