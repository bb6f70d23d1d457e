"""Predict with a trained model.

    bertkit predict MODEL_DIR INPUT [--output FILE] [data.KEY=VALUE ...]     (also: python -m bertkit.predict)

Any `model/` folder bertkit wrote reads INPUT the way its training read files: the data settings it was trained
with (text columns, sequence length, windows, tag column, ...) are recorded in its config.json, and
`data.KEY=VALUE` changes them for this file. A checkpoint without that record (e.g. from the Hub) gets its
head's task with the default settings. Per head:

- sequence classification: CSV/TSV/JSON Lines/parquet columns (data.text_column, data.text_pair_column) or a
  .txt file, one text per line; the label and every class's probability (or the score of a regression head);
- token classification: raw text, a sentence per line, or a CoNLL column file (words first); a tag per word
  and the entity spans;
- question answering: JSON Lines (or CSV/TSV) with question and context (and id), or SQuAD JSON; the answer,
  its probability and its characters in the context, long contexts in windows as in training;
- multiple choice: the layouts training reads; the chosen option and every option's probability;
- masked LM (pretrained models): texts with the mask token; the top k tokens per mask.

--output FILE.jsonl (or no --output: standard output) writes a JSON object per example; another suffix writes
the file training writes under predictions/ for that suffix (e.g. .tsv for classification, .txt CoNLL columns
for NER, .json SQuAD predictions), equal to training's for the same file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from accelerate import Accelerator
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PretrainedConfig

from bertkit.core.atomic import atomic_write
from bertkit.core.errors import BertkitError, ConfigError, first_line
from bertkit.core.schema import INPUT
from bertkit.model import check_sequence_length, load_trained
from bertkit.tasks.base import CheckpointLabels, Prediction, Task
from bertkit.tasks.registry import recorded_recipe
from bertkit.tokenizer import fit_inputs
from bertkit.training.evaluation import gather_split

log = logging.getLogger("bertkit.predict")


def task_for_checkpoint(model_dir: str, config: PretrainedConfig, input_path: str, overrides: list[str]) -> Task[Any]:
    """The checkpoint's task, its data settings as recorded (or the defaults) changed by `data.KEY=VALUE`
    overrides (Hydra's override grammar, as in training), reading `input_path` wherever the recipe names an
    input, and labelled as the checkpoint is."""
    schema, task_class, recorded = recorded_recipe(config, model_dir)
    known = {spec.name for spec in dataclasses.fields(schema)}
    if set(recorded) - known:  # a folder written by another bertkit version
        log.warning("%s: ignoring recorded data settings %s", model_dir, sorted(set(recorded) - known))
        recorded = {key: value for key, value in recorded.items() if key in known}
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as error:
        raise ConfigError(f"invalid setting: {first_line(error)} (values with spaces or # go in quotes)") from None
    wrong = next(
        (o.input_line for o in parsed if not o.key_or_group.startswith("data.") or o.is_sweep_override()), None
    )
    if wrong is not None:
        raise ConfigError(f"invalid setting {wrong}: predict takes data settings only, as data.KEY=VALUE")
    try:
        merged: Any = OmegaConf.merge(OmegaConf.structured(schema), recorded)
        for override in parsed:
            OmegaConf.update(merged, override.key_or_group.removeprefix("data."), override.value(), merge=True)
        for spec in dataclasses.fields(schema):
            if spec.metadata.get(INPUT):
                listed = not OmegaConf.is_missing(merged, spec.name) and OmegaConf.is_list(merged[spec.name])
                merged[spec.name] = [input_path] if listed else input_path
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "data"
        raise ConfigError(f"invalid setting data.{key}: {first_line(error)}") from None
    task = task_class(cfg)
    task.use_checkpoint_labels(CheckpointLabels.of(model_dir, config))
    return task


def predict(
    model_dir: str,
    input_path: str,
    overrides: list[str],
    batch_size: int,
    top_k: int,
    cpu: bool,
    sort_by_length: bool = False,
) -> tuple[Prediction, Any, dict[str, Any]]:
    """The prediction of a file, its decoded predictions, and how fast it went."""
    model, tokenizer = load_trained(model_dir)
    fit_inputs(tokenizer, model.config)
    task = task_for_checkpoint(model_dir, model.config, input_path, overrides)
    check_sequence_length(model.config, task.max_seq_length)
    accelerator = Accelerator(cpu=cpu)
    with tempfile.TemporaryDirectory(prefix="bertkit-predict-") as cache:
        prediction = task.predict_file(input_path, tokenizer, Path(cache), top_k)
        lengths = np.array([_tokens(ids) for ids in prediction.inputs["input_ids"]])
        # Longest first: batches of similar lengths, less padding; the order is restored before decoding. Other
        # batches round a probability's last digits otherwise, so file order (training's) is the default.
        order = np.argsort(-lengths, kind="stable") if sort_by_length else np.arange(len(lengths))
        loader = DataLoader(prediction.inputs.select(order), batch_size=batch_size, collate_fn=prediction.collate)
        model, loader = accelerator.prepare(model, loader)
        started = time.perf_counter()
        batches = tqdm(loader, desc="Predicting", unit="batch", disable=None, file=sys.stderr)
        gathered = gather_split(accelerator, model, batches, prediction.gather)
        seconds = time.perf_counter() - started
        in_file_order = np.argsort(order)
        decoded = prediction.decode({name: values[in_file_order] for name, values in gathered.items()})
        tokens = int(lengths.sum())
    speed = {
        "examples": prediction.examples,
        "features": len(prediction.inputs),
        "tokens": tokens,
        "seconds": seconds,
        "examples_per_second": prediction.examples / seconds,
        "tokens_per_second": tokens / seconds,
        "device": str(accelerator.device),
    }
    return prediction, decoded, speed


def _tokens(ids: list) -> int:
    """Tokens of one feature (of all its choices, for multiple choice)."""
    return sum(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids)


def output_text(prediction: Prediction, decoded: Any, output: Path | None) -> str:
    """JSON Lines for a .jsonl file (or standard output); else the training prediction file of that suffix."""
    if output is None or output.suffix.lower() == ".jsonl":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in prediction.records(decoded))
    files = prediction.files(decoded)
    text = next((text for name, text in files.items() if Path(name).suffix == output.suffix.lower()), None)
    if text is None:
        suffixes = sorted({Path(name).suffix for name in files} | {".jsonl"})
        raise ConfigError(f"--output {output}: this model's predictions are written as {', '.join(suffixes)}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bertkit predict", description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("model_dir", help="a model/ folder bertkit wrote, or a Hub id")
    parser.add_argument("input", help="the file to predict")
    parser.add_argument("overrides", nargs="*", help="data.KEY=VALUE: a data setting for this file")
    parser.add_argument("--output", type=Path, help="FILE.jsonl, or a training prediction file's suffix")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=5, help="alternatives per prediction (fill-mask, QA)")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    parser.add_argument(
        "--sort-by-length", action="store_true", help="batch similar lengths together: faster; the last digits of a "
        "probability may differ from training's files (which are in file order)",
    )  # fmt: skip
    args = parser.parse_intermixed_args(argv)  # settings may come before or after the options
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    datasets.disable_progress_bars()
    try:
        if args.batch_size < 1 or args.top_k < 1:
            raise ConfigError("invalid setting --batch-size / --top-k: must be >= 1")
        prediction, decoded, speed = predict(
            args.model_dir, args.input, args.overrides, args.batch_size, args.top_k, args.cpu, args.sort_by_length
        )
        text = output_text(prediction, decoded, args.output)
    except BertkitError as error:
        print(f"bertkit: error: {error}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.output, text)
    print(
        f"Predicted {speed['examples']:,} examples ({speed['features']:,} features, {speed['tokens']:,} tokens) "
        f"in {speed['seconds']:.2f} s on {speed['device']}: {speed['examples_per_second']:,.1f} examples/s, "
        f"{speed['tokens_per_second']:,.0f} tokens/s" + (f"; wrote {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
