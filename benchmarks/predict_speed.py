"""`bertkit predict` (file order, and --sort-by-length) against the transformers text-classification pipeline on
this CPU: the same model, sentence pairs and batch size, as a throughput ratio (and whether labels agree).

    python benchmarks/predict_speed.py [--model ../shared/models/all-MiniLM-L6-v2] [--batch 32]

The checkpoint gets a 2-label sequence-classification head (random, seeded: speed does not depend on it),
saved as a folder both read. The input is MRPC's dev set (408 sentence pairs) from ../shared, written as a CSV
with two text columns. Both sides are timed whole (loading the folder, tokenizing, the forward passes), twice
each; the faster run counts (the first warms caches up).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bertkit.predict import predict  # noqa: E402


def pairs_csv(dev_tsv: Path, out: Path) -> list[dict[str, str]]:
    with open(dev_tsv, encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    first, second = header.index("#1 String"), header.index("#2 String")
    pairs = [{"text": row[first], "text_pair": row[second]} for row in rows[1:] if len(row) == len(header)]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["text", "text_pair"])
        writer.writeheader()
        writer.writerows(pairs)
    return pairs


def fastest(run, repeats: int = 2) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--dev", default=str(ROOT.parent / "shared" / "data" / "glue_data" / "MRPC" / "dev.tsv"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "predict_speed.json"))
    args = parser.parse_args()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    with tempfile.TemporaryDirectory() as work:
        model_dir, data = Path(work) / "model", Path(work) / "pairs.csv"
        torch.manual_seed(0)
        AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2).save_pretrained(model_dir)
        AutoTokenizer.from_pretrained(args.model).save_pretrained(model_dir)
        pairs = pairs_csv(Path(args.dev), data)
        overrides = ["data.text_pair_column=text_pair"]
        bertkit_seconds, (_, decoded, _) = fastest(
            lambda: predict(str(model_dir), str(data), overrides, args.batch, 1, cpu=True)
        )
        sorted_seconds, (_, decoded_sorted, _) = fastest(
            lambda: predict(str(model_dir), str(data), overrides, args.batch, 1, cpu=True, sort_by_length=True)
        )

        def hf_pipeline() -> list:
            classify = pipeline("text-classification", model=str(model_dir), device=-1, top_k=None)
            return classify(pairs, batch_size=args.batch, truncation=True, max_length=128)

        hf_seconds, scored = fastest(hf_pipeline)
    hf_labels = [max(ranked, key=lambda s: s["score"])["label"] for ranked in scored]
    labels = [f"LABEL_{int(i)}" for i in decoded.values]
    report = {
        "model": args.model,
        "examples": len(pairs),
        "batch": args.batch,
        "torch_threads": torch.get_num_threads(),
        "pipeline_seconds": hf_seconds,
        "bertkit_predict_seconds": bertkit_seconds,
        "bertkit_predict_sorted_seconds": sorted_seconds,
        "pipeline_examples_per_second": len(pairs) / hf_seconds,
        "bertkit_examples_per_second": len(pairs) / bertkit_seconds,
        "bertkit_sorted_examples_per_second": len(pairs) / sorted_seconds,
        "speedup_file_order": hf_seconds / bertkit_seconds,
        "speedup_sorted_by_length": hf_seconds / sorted_seconds,
        "labels_agree_with_pipeline": sum(a == b for a, b in zip(labels, hf_labels, strict=True)) / len(pairs),
        "sorted_labels_agree": float((decoded.values == decoded_sorted.values).mean()),
    }
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
