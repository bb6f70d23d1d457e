"""Peak memory of a streamed pretraining corpus (data.streaming=true): the Gutenberg novels against ten copies.

    python benchmarks/streaming_memory.py                 # both sizes, each in a fresh process and cache
    python benchmarks/streaming_memory.py --copies 10     # one size (what each measurement runs)

A streamed run holds one block of documents (data.stream_buffer) at a time, so its peak resident memory must not
grow with the corpus: ten copies within 1.2x of one. Each size runs `make pretrain`'s recipe with the corpus
streamed, in its own process with an empty cache: the WordPiece vocabulary trained on the stream, the held-out
documents built, then one whole epoch of process 0's training stream read through the training collator (NSP
pairs cut block by block, dynamic masks) until the stream starts its second epoch. Novels are long documents,
so the block is 8 of them (one copy of the corpus is 33). Peak RSS comes from /usr/bin/time -v, as for the
cached builder (corpus_memory.py). Results go to benchmarks/results/streaming_memory.json and .md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from corpus_memory import built_data, measure
from runs import write_results

BLOCK_DOCUMENTS = 8
BATCH = 32


def stream_one_epoch(copies: int, work: Path) -> dict:
    """Build a streamed run's data on `copies` copies of the corpus and read an epoch of it (in this process)."""
    streamed = ["data.streaming=true", f"data.stream_buffer={BLOCK_DOCUMENTS}", "data.max_eval_documents=2"]
    data, prepare_seconds = built_data(copies, work, streamed)
    from bertkit.core.batch import EPOCH, STREAM_POSITION  # importable once built_data put bertkit on the path

    started = time.perf_counter()
    stream = iter(data.train.for_process(0, 1, 42))
    instances = tokens = blocks = 0
    while True:
        examples = list(itertools.islice(stream, BATCH))
        if examples[-1][EPOCH] > 0:
            break
        batch = data.collate_train(examples)
        instances, tokens = instances + len(examples), tokens + int(batch["attention_mask"].sum())
        blocks = batch[STREAM_POSITION]["block"] + 1
    return {"copies": copies, "prepare_seconds": prepare_seconds, "epoch_seconds": time.perf_counter() - started,
            "blocks": blocks, "instances": instances, "tokens": tokens,
            "held_out": data.stats["heldout"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, help="measure in this process (what each measurement runs)")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.copies is not None:
        print(json.dumps(stream_one_epoch(args.copies, args.work)))
        return
    rows = [measure(copies, __file__) for copies in (1, 10)]
    ratio = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    lines = [
        "| corpus | blocks of 8 novels | instances (an epoch) | tokens | peak RSS | vocabulary, held-out | epoch | wall"
        " |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| Gutenberg x{row['copies']} | {row['blocks']:,} | {row['instances']:,} | {row['tokens']:,} | "
            f"{row['peak_rss_mb']:,.0f} MB | {row['prepare_seconds']:.0f} s | {row['epoch_seconds']:.0f} s | "
            f"{row['wall_clock']} |"
        )
    lines.append(
        f"\nPeak RSS ratio x10 / x1: {ratio:.2f} (target: at most 1.2). Nothing is cached but the tokenizer and the "
        "held-out instances; the cached builder's figures for the same corpora are in corpus_memory.md."
    )
    write_results("streaming_memory", {"runs": rows, "peak_rss_ratio": ratio}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
