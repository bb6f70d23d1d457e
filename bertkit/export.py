"""Export a model folder to ONNX, checked against PyTorch.

    bertkit export MODEL_DIR --format onnx --output DIR      (also: python -m bertkit.export ...)

Any `model/` folder bertkit wrote (or a Hub checkpoint of the same heads): the model is traced by
`torch.onnx.export` with a dynamic batch and sequence length, saved as `DIR/model.onnx` beside its tokenizer
and config.json, then run by onnxruntime on inputs of another shape than the ones it was traced with. The
largest difference between its outputs and PyTorch's is reported (`DIR/export_report.json`); above
`--tolerance` (1e-4) the export fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bertkit.core.errors import BertkitError, ModelError
from bertkit.model import load_trained

TRACE_TEXTS = ["A short sentence.", "A second, rather longer sentence to trace the model with."]
CHECK_TEXTS = ["Checked on other inputs:", "three of them,", "of other lengths than the traced ones, to be sure."]


def export_onnx(model_dir: str, output: Path, tolerance: float = 1e-4) -> dict[str, Any]:
    """model.onnx, the tokenizer and config.json in `output`; returns the report (parity, sizes, timing)."""
    model, tokenizer = load_trained(model_dir)
    traced = _inputs(tokenizer, model, TRACE_TEXTS)
    names: list[str] = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in traced]
    with torch.no_grad():
        outputs = [key for key, value in model(**traced).items() if torch.is_tensor(value) and key != "loss"]
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dims = {1: sequence} if traced["input_ids"].dim() == 2 else {2: sequence}
    torch.onnx.export(
        model, (), str(output / "model.onnx"), kwargs={n: traced[n] for n in names}, input_names=names,
        output_names=outputs, dynamic_shapes={n: {0: batch, **dims} for n in names}, dynamo=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    tokenizer.save_pretrained(output)
    model.config.save_pretrained(output)
    difference = _parity(model, tokenizer, output / "model.onnx", names, outputs)
    report = {"model": model_dir, "class": type(model).__name__, "inputs": names, "outputs": outputs,
              "max_abs_difference": difference, "tolerance": tolerance, "export_seconds": seconds}  # fmt: skip
    (output / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    if difference > tolerance:
        raise ModelError(f"{output / 'model.onnx'}: outputs differ from PyTorch's by {difference:.3g} (> {tolerance})")
    return report


def _inputs(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, texts: list[str]) -> dict[str, torch.Tensor]:
    """Tokenized texts; for a multiple-choice head, each text paired with two choices ([batch, choices, tokens])."""
    if type(model).__name__.endswith("ForMultipleChoice"):
        firsts = [text for text in texts for _ in range(2)]
        seconds = [choice for _ in texts for choice in ("one choice", "another, longer choice")]
        encoded = tokenizer(firsts, seconds, padding=True, return_tensors="pt")
        return {name: value.view(len(texts), 2, -1) for name, value in encoded.items()}
    return dict(tokenizer(texts, padding=True, return_tensors="pt"))


def _parity(model, tokenizer, path: Path, names: list[str], outputs: list[str]) -> float:
    """The largest absolute difference between onnxruntime's and PyTorch's outputs on inputs of a new shape."""
    import onnxruntime

    inputs = _inputs(tokenizer, model, CHECK_TEXTS)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(outputs, {name: inputs[name].numpy() for name in names})
    with torch.no_grad():
        reference = model(**{name: inputs[name] for name in names})
    return max(float(np.abs(got - reference[key].numpy()).max()) for key, got in zip(outputs, exported, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bertkit export", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="a model/ folder bertkit wrote, or a Hub id")
    parser.add_argument("--format", choices=["onnx"], default="onnx")
    parser.add_argument("--output", type=Path, required=True, help="folder for model.onnx and its tokenizer")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest output difference allowed")
    args = parser.parse_args(argv)
    try:
        report = export_onnx(args.model_dir, args.output, args.tolerance)
    except BertkitError as error:
        print(f"bertkit: error: {error}", file=sys.stderr)
        return 2
    print(f"Exported {report['class']} to {args.output / 'model.onnx'}: largest difference from PyTorch "
          f"{report['max_abs_difference']:.2g} (tolerance {args.tolerance})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
