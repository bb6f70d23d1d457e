"""Corpus building speed: bertkit's pretraining data recipe vs google-research/bert's create_pretraining_data.py.

    python benchmarks/corpus_building.py --google-bert /path/to/bert-checkout --tf-python /path/to/tf-venv/bin/python
    python benchmarks/corpus_building.py ... --books 5     # the first 5 novels only (a quick look)

Both get the same input: the Gutenberg novels of ../shared as bertkit's prose reader splits them (book text
only, one sentence per line), each book cut into documents of 200 sentences (a blank line between them),
written once to a temporary file and not timed.
Both use the same uncased WordPiece vocabulary (all-MiniLM-L6-v2's), sequence length 128, dupe_factor 1,
short_seq_prob 0.1, 15% static masks. bertkit is timed from that file to its Arrow instance cache (reading,
tokenizing, NSP instances, masks; a fresh process and an empty cache each time), once with one process and
once with `data.num_proc` = the machine's cores; the baseline is timed inside its own `main` (reading,
tokenizing, instances, masks, TFRecord writing), see google_bert_corpus.py. Speed is WordPiece tokens of
input per second per core: per CPU-second of all the run's processes and threads (what "per core" means
when the work is spread), and per wall second divided by the processes used. The statistics that must
agree: NSP random-next fraction, masked fraction of instance tokens, mean instance length.

The baseline needs TensorFlow (tested with 2.21: `python3.11 -m venv tf && tf/bin/pip install tensorflow-cpu six`)
and a checkout of https://github.com/google-research/bert; neither is part of bertkit. Results go to
benchmarks/results/corpus_building.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
GUTENBERG = SHARED / "data" / "text" / "gutenberg"
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))  # bertkit itself, when this file runs as a script
SECTION = 200  # sentences per document (see write_input)
QUIET = {"HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "TOKENIZERS_PARALLELISM": "true"}


def compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from bertkit import config

    config.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return config.load(compose("train", overrides=["+experiment=pretrain_tiny", *overrides]))


def write_input(books: list[Path], path: Path, work: Path) -> None:
    """The novels as bertkit's prose reader sees them, in google-research/bert's input format, each book cut
    into documents of SECTION sentences.

    Both builders draw the short target length (short_seq_prob) once per document: with 35 books as 35
    documents, whether two or six of them draw it moves the mean instance length by 10%, and the statistics
    the two are compared on would differ by chance. Sections of a book are still its running text."""
    from bertkit.tasks.pretraining.corpus import load_documents

    run = compose(["data.source=prose_files", f"data.paths=[{','.join(map(str, books))}]", f"cache_dir={work}"])
    documents = load_documents(run.data, work)
    with path.open("w", encoding="utf-8") as out:
        for document in documents:
            sentences = document["sentences"]
            for start in range(0, len(sentences), SECTION):
                out.write("\n".join(sentences[start : start + SECTION]) + "\n\n")


def build_with_bertkit(corpus: Path, work: Path, processes: int) -> dict:
    """bertkit's pretraining data recipe on the prepared file, in this (fresh) process."""
    import pyarrow.compute as pc

    from bertkit import tokenizer
    from bertkit.tasks.registry import task_for

    run = compose([
        "data.source=sentence_files", f"data.paths=[{corpus}]", f"tokenizer.name_or_path={MODEL}",
        "data.masking.mode=static", "data.max_seq_length=128", "data.dupe_factor=1", "data.short_seq_prob=0.1",
        f"data.num_proc={processes}", f"cache_dir={work}",
    ])  # fmt: skip
    task = task_for(run.data)
    tok = tokenizer.build(run.tokenizer, run.model, lambda: task.training_text(work), work)
    cpu, wall = cpu_seconds(), time.perf_counter()
    bundle = task.build(tok, work)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu

    splits = [bundle.train, *bundle.evaluation.values()]
    instances = sum(len(split) for split in splits)
    lengths = sum(pc.sum(pc.list_value_length(split.data.column("input_ids"))).as_py() for split in splits)
    masked = sum(pc.sum(pc.not_equal(pc.list_flatten(split.data.column("labels")), -100)).as_py() for split in splits)
    random_next = sum(pc.sum(split.data.column("next_sentence_label")).as_py() for split in splits)
    return {
        "seconds": wall, "cpu_seconds": cpu, "tokens": sum(stats["tokens"] for stats in bundle.stats.values()),
        "instances": instances, "nsp_random_next_fraction": random_next / instances,
        "mean_instance_tokens": lengths / instances, "masked_fraction": masked / lengths,
    }  # fmt: skip


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (datasets' worker pools), all threads."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_bertkit(corpus: Path, processes: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        command = [sys.executable, __file__, "--bertkit", str(corpus), "--processes", str(processes), "--work", work]
        # One process also means one tokenizer thread: the Rust tokenizer would otherwise use every core.
        env = dict(os.environ, **QUIET, **({"RAYON_NUM_THREADS": "1"} if processes == 1 else {}))
        result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return {"system": f"bertkit, {processes} process{'es' if processes > 1 else ''}", "processes": processes,
            **json.loads(result.stdout.strip().splitlines()[-1])}  # fmt: skip


def measure_google(corpus: Path, args) -> dict:
    with tempfile.TemporaryDirectory() as work:
        command = [
            args.tf_python, str(ROOT / "benchmarks" / "google_bert_corpus.py"), "--google-bert", args.google_bert,
            "--input", str(corpus), "--vocab", str(MODEL / "vocab.txt"), "--output", f"{work}/instances.tfrecord",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, **QUIET))
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return {"system": "google-research/bert create_pretraining_data.py", "processes": 1,
            **json.loads(result.stdout.strip().splitlines()[-1])}  # fmt: skip


def per_core(row: dict) -> dict:
    return {
        "tokens_per_cpu_second": row["tokens"] / row["cpu_seconds"],
        "tokens_per_second_per_process": row["tokens"] / row["seconds"] / row["processes"],
    }


def table(rows: list[dict], books: int) -> str:
    baseline = rows[-1]
    lines = [
        f"Gutenberg, {books} novels in documents of {SECTION} sentences; seq 128, dupe_factor 1, static 15% masks; "
        f"{os.cpu_count()} cores.",
        "",
        "| system | tokens | seconds | CPU s | tokens/CPU-s | x baseline | tokens/s/process | x baseline "
        "| instances | NSP random next | masked | mean length |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['system']} | {row['tokens']:,} | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} "
            f"| {row['tokens_per_cpu_second']:,.0f} "
            f"| {row['tokens_per_cpu_second'] / baseline['tokens_per_cpu_second']:.2f} "
            f"| {row['tokens_per_second_per_process']:,.0f} "
            f"| {row['tokens_per_second_per_process'] / baseline['tokens_per_second_per_process']:.2f} "
            f"| {row['instances']:,} | {100 * row['nsp_random_next_fraction']:.2f}% "
            f"| {100 * row['masked_fraction']:.2f}% | {row['mean_instance_tokens']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--google-bert", default=os.environ.get("GOOGLE_BERT_DIR"),
                        help="a checkout of google-research/bert (or $GOOGLE_BERT_DIR)")  # fmt: skip
    parser.add_argument("--tf-python", default=os.environ.get("TF_PYTHON"),
                        help="a Python with TensorFlow 2 (or $TF_PYTHON)")  # fmt: skip
    parser.add_argument("--books", type=int, help="only the first N novels (sorted by file name)")
    parser.add_argument("--bertkit", type=Path, help=argparse.SUPPRESS)  # one bertkit measurement, in this process
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bertkit:
        print(json.dumps(build_with_bertkit(args.bertkit, args.work, args.processes)))
        return
    for name, value, flag in (("google-research/bert", args.google_bert, "--google-bert"),
                              ("TensorFlow", args.tf_python, "--tf-python")):  # fmt: skip
        if not value or not Path(value).exists():
            raise SystemExit(f"the baseline needs {name}: set {flag} (see this script's docstring)")

    books = sorted(GUTENBERG.glob("*.txt"))[: args.books]
    with tempfile.TemporaryDirectory() as work:
        corpus = Path(work) / "corpus.txt"
        write_input(books, corpus, Path(work) / "cache")
        rows = [measure_bertkit(corpus, 1)]
        if (os.cpu_count() or 1) > 1:
            rows.append(measure_bertkit(corpus, os.cpu_count()))
        rows.append(measure_google(corpus, args))
    rows = [{**row, **per_core(row)} for row in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "corpus_building.json").write_text(json.dumps({"books": len(books), "rows": rows}, indent=1) + "\n")
    markdown = table(rows, len(books))
    (RESULTS / "corpus_building.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
