"""ONNX Runtime against PyTorch on this CPU: the same exported model, the same batches, as a speed ratio.

    python benchmarks/onnx_speed.py [--model ../shared/models/all-MiniLM-L6-v2] [--batch 32] [--length 128]

Exports the checkpoint with a sequence-classification head through `bertkit export` (which checks parity),
then times both on identical batches (after a warm-up), in one process, one after the other.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bertkit.export import export_onnx  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "onnx_speed.json"))
    args = parser.parse_args()
    import onnxruntime
    from transformers import AutoModelForSequenceClassification

    with tempfile.TemporaryDirectory() as work:
        model_dir = Path(work) / "model"
        AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2).save_pretrained(model_dir)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(args.model).save_pretrained(model_dir)
        report = export_onnx(str(model_dir), Path(work) / "onnx")
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        session = onnxruntime.InferenceSession(str(Path(work) / "onnx" / "model.onnx"))
        rng = np.random.default_rng(0)
        inputs = {
            "input_ids": rng.integers(1000, 20000, (args.batch, args.length)),
            "attention_mask": np.ones((args.batch, args.length), dtype=np.int64),
            "token_type_ids": np.zeros((args.batch, args.length), dtype=np.int64),
        }
        feeds = {name: inputs[name] for name in report["inputs"]}
        tensors = {name: torch.from_numpy(value) for name, value in feeds.items()}

        def torch_run() -> None:
            with torch.no_grad():
                model(**tensors)

        def ort_run() -> None:
            session.run(None, feeds)

        seconds = {name: timed(run, args.repeats) for name, run in (("pytorch", torch_run), ("onnxruntime", ort_run))}
    result = {
        "model": args.model, "batch": args.batch, "length": args.length, "repeats": args.repeats,
        "threads": torch.get_num_threads(), "max_abs_difference": report["max_abs_difference"],
        "seconds_per_batch": seconds, "onnxruntime_speedup": seconds["pytorch"] / seconds["onnxruntime"],
    }  # fmt: skip
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def timed(run, repeats: int) -> float:
    for _ in range(3):
        run()
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - started) / repeats


if __name__ == "__main__":
    main()
