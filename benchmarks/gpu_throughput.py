"""GPU training throughput: bertkit's training loop against a plain Hugging Face loop, in bf16.

    python benchmarks/gpu_throughput.py                   # on a CUDA machine: both benchmarks below
    python benchmarks/gpu_throughput.py --compile         # also a bertkit arm with trainer.torch_compile=true
    python benchmarks/gpu_throughput.py --smoke           # bert_tiny, a few steps, any device: checks the script

1. Pretraining, BERT-base (L12/H768), sequence 128: tokens/s and model FLOP utilization. bertkit is its own
   `loop.train` with the pretraining collator (dynamic 15% masks keyed by example) and its model recipe
   (MLM logits at masked positions only, SDPA attention, fused AdamW, bf16 autocast through Accelerate);
   the baseline is what a hand-written script does: `BertForPreTraining`, a masking collator, torch AdamW,
   `torch.autocast(bfloat16)`, gradient clipping, a linear schedule.
2. SQuAD-style fine-tuning, `BertForQuestionAnswering` at sequence 384 (windows of a long context are full).

Both arms read the same synthetic full-length examples (random token ids: speed does not depend on them)
through a DataLoader with workers and pinned memory, and both take the same number of optimizer steps; the
first `--warmup` steps (CUDA kernels selection, torch.compile) are not timed. bertkit's figure comes from its
own log.jsonl (each line closes a window of `log_every` steps after a device synchronisation); the
baseline synchronises at the same points.

Model FLOP utilization counts, per token, 6 x parameters (forward and backward of every weight) plus
12 x layers x sequence x hidden (the attention score and value products), over the H200's measured dense
bf16 rate of 790 TFLOP/s (`--peak-tflops`). Results go to benchmarks/results/gpu_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from omegaconf import OmegaConf
from tokenizers import Tokenizer, models
from torch.utils.data import DataLoader
from transformers import (
    BertConfig,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertTokenizerFast,
    DataCollatorForLanguageModeling,
    default_data_collator,
    get_linear_schedule_with_warmup,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bertkit.core.task import Head, TaskData, TaskSpec  # noqa: E402
from bertkit.model import build_model  # noqa: E402
from bertkit.settings import MixedPrecision, ModelConfig, ResumeMode, TrainerConfig  # noqa: E402
from bertkit.tasks.fine_tuning import DynamicPadding  # noqa: E402
from bertkit.tasks.pretraining.config import MaskingConfig  # noqa: E402
from bertkit.tasks.pretraining.heads import MaskedLMOnlyBertForPreTraining  # noqa: E402
from bertkit.tasks.pretraining.masking import PretrainingCollator, VocabularyTables  # noqa: E402
from bertkit.tasks.question_answering.features import MODEL_COLUMNS as QA_COLUMNS  # noqa: E402
from bertkit.training.accelerator import make_accelerator, release_accelerator  # noqa: E402
from bertkit.training.trainer import Trainer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VOCAB = 30522  # BERT's uncased vocabulary size
PAD, CLS, SEP, MASK = 0, 101, 102, 103  # where BERT's vocabulary has them
LEARNING_RATE = {"pretraining": 1e-4, "squad": 3e-5}


def synthetic_tokenizer() -> BertTokenizerFast:
    """A BERT tokenizer with BERT's special-token ids over a made-up vocabulary of the real size."""
    tokens = [f"w{i}" for i in range(VOCAB)]
    for token, index in {"[PAD]": PAD, "[UNK]": 100, "[CLS]": CLS, "[SEP]": SEP, "[MASK]": MASK}.items():
        tokens[index] = token
    backend = Tokenizer(models.WordPiece({token: i for i, token in enumerate(tokens)}, unk_token="[UNK]"))
    return BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]")  # fmt: skip


def synthetic_examples(task: str, count: int, length: int, seed: int) -> datasets.Dataset:
    """Full-length [CLS] A [SEP] B [SEP] examples; NSP labels for pretraining, answer spans for SQuAD."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, VOCAB, (count, length), dtype=np.int64)
    ids[:, 0], ids[:, length // 4], ids[:, -1] = CLS, SEP, SEP  # a question of a quarter, then the context
    columns: dict[str, object] = {"input_ids": ids}
    if task == "pretraining":
        columns["next_sentence_label"] = rng.integers(0, 2, count)
    else:
        columns["token_type_ids"] = np.broadcast_to(np.arange(length) > length // 4, (count, length)).astype(np.int64)
        columns["attention_mask"] = np.ones((count, length), dtype=np.int64)
        starts = rng.integers(length // 4 + 1, length - 20, count)
        columns["start_positions"], columns["end_positions"] = starts, starts + rng.integers(0, 10, count)
    return datasets.Dataset.from_dict(columns)


class NoEvaluation:
    """Throughput runs evaluate nothing (no evaluation splits): the trainer never calls these."""

    def gather(self, batch, output):
        raise NotImplementedError

    def decode(self, split, gathered):
        raise NotImplementedError

    def score(self, split, decoded):
        raise NotImplementedError


def architecture(name: str) -> dict:
    sizes = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"))
    return {k: sizes[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")}


def flops_per_token(model: torch.nn.Module, sizes: dict, length: int) -> float:
    parameters = sum(p.numel() for p in model.parameters())
    return 6 * parameters + 12 * sizes["num_hidden_layers"] * length * sizes["hidden_size"]


def run_bertkit(task: str, args, sizes: dict, tokenizer, examples, work: Path, compile_model: bool) -> dict:
    length = args.length[task]
    spec = TaskSpec(vocab_size=VOCAB, pad_token_id=PAD, max_seq_length=length)
    if task == "pretraining":
        collate = PretrainingCollator(VocabularyTables(tokenizer), MaskingConfig(), seed=0)
        head = Head(model_class=MaskedLMOnlyBertForPreTraining)
    else:
        collate = DynamicPadding(tokenizer, 8, QA_COLUMNS)
        head = Head(model_class=BertForQuestionAnswering, config={"num_labels": 2})
    data = TaskData(spec=spec, train=examples, evaluation={}, collate_train=collate, collate_eval=collate)
    cfg = TrainerConfig(
        per_device_batch_size=args.batch[task],
        max_steps=args.warmup + args.steps,
        learning_rate=LEARNING_RATE[task],
        warmup_steps=args.warmup,
        mixed_precision=MixedPrecision.bf16,
        log_every=args.log_every,
        resume=ResumeMode.never,
        num_workers=args.workers,
        torch_compile=compile_model,
        progress_bar=False,
    )
    accelerator = make_accelerator(cfg, seed=0)
    model = build_model(ModelConfig(**sizes), spec, head).model
    run_dir = work / f"bertkit-{task}-{compile_model}"
    run_dir.mkdir()
    try:
        Trainer(accelerator, cfg, model, data, NoEvaluation(), run_dir, seed=0).fit()
    finally:
        release_accelerator()
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    windows = [r for r in records if "elapsed_seconds" in r]
    start = next(r for r in windows if r["step"] == args.warmup)
    steps = windows[-1]["step"] - start["step"]
    seconds = windows[-1]["elapsed_seconds"] - start["elapsed_seconds"]
    return {"steps": steps, "seconds": seconds, "tokens": steps * args.batch[task] * length,
            "loss": windows[-1]["loss"], "model": model}  # fmt: skip


def run_baseline(task: str, args, sizes: dict, tokenizer, examples, device: torch.device) -> dict:
    """A plain script: stock model and collator, torch AdamW, torch.autocast, nothing from bertkit."""
    length = args.length[task]
    config = BertConfig(vocab_size=VOCAB, pad_token_id=PAD, **sizes)
    model = (BertForPreTraining if task == "pretraining" else BertForQuestionAnswering)(config).to(device)
    if task == "pretraining":
        masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt")

        def collate(features: list[dict]) -> dict[str, torch.Tensor]:
            batch = masking([{"input_ids": f["input_ids"]} for f in features])
            first_sep = (batch["input_ids"] == SEP).int().argmax(dim=1, keepdim=True)
            batch["token_type_ids"] = (torch.arange(batch["input_ids"].shape[1]) > first_sep).long()  # B and its [SEP]
            batch["next_sentence_label"] = torch.tensor([f["next_sentence_label"] for f in features])
            return dict(batch)
    else:
        collate = default_data_collator
    loader = DataLoader(examples, batch_size=args.batch[task], shuffle=True, collate_fn=collate,
                        num_workers=args.workers, pin_memory=device.type == "cuda", drop_last=True)  # fmt: skip
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (p.ndim < 2 or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=LEARNING_RATE[task])  # fmt: skip
    total = args.warmup + args.steps
    scheduler = get_linear_schedule_with_warmup(optimizer, args.warmup, total)
    model.train()
    step, started = 0, None
    while step < total:
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == args.warmup:
                synchronize(device)
                started = time.perf_counter()
            if step == total:
                break
    last_loss = float(loss.detach())  # synchronises
    seconds = time.perf_counter() - started
    return {"steps": args.steps, "seconds": seconds, "tokens": args.steps * args.batch[task] * length,
            "loss": last_loss, "model": model}  # fmt: skip


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(task: str, args, device: torch.device, work: Path) -> list[dict]:
    sizes = architecture(args.model)
    length = args.length[task]
    tokenizer = synthetic_tokenizer()
    examples = synthetic_examples(task, args.batch[task] * (args.warmup + args.steps + 2), length, seed=0)
    arms = [("plain Hugging Face loop", lambda: run_baseline(task, args, sizes, tokenizer, examples, device)),
            ("bertkit", lambda: run_bertkit(task, args, sizes, tokenizer, examples, work, False))]  # fmt: skip
    if args.compile:
        arms.append(("bertkit, torch_compile", lambda: run_bertkit(task, args, sizes, tokenizer, examples, work, True)))
    rows = []
    for name, run in arms:
        torch.manual_seed(0)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        result = run()
        flops = flops_per_token(result.pop("model"), sizes, length)
        tokens_per_second = result["tokens"] / result["seconds"]
        rows.append({
            "task": task, "arm": name, "model": args.model, "batch": f"{args.batch[task]} x {length}",
            **result, "tokens_per_second": tokens_per_second,
            "mfu": flops * tokens_per_second / (args.peak_tflops * 1e12),
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else None,
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        row["x_baseline"] = row["tokens_per_second"] / rows[0]["tokens_per_second"]
    return rows


def table(rows: list[dict], device: str, peak: float) -> str:
    lines = [
        f"{device}; bf16; MFU over {peak:g} TFLOP/s.",
        "",
        "| task | arm | model | batch | timed steps | tokens/s | x baseline | MFU | peak memory | last loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        memory = f"{r['peak_memory_gb']:.1f} GB" if r["peak_memory_gb"] is not None else "-"
        lines.append(
            f"| {r['task']} | {r['arm']} | {r['model']} | {r['batch']} | {r['steps']} | {r['tokens_per_second']:,.0f} "
            f"| **{r['x_baseline']:.2f}** | {100 * r['mfu']:.1f}% | {memory} | {r['loss']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["pretraining", "squad"], choices=["pretraining", "squad"])
    parser.add_argument("--model", default="bert_base", help="a model recipe under conf/model/")
    parser.add_argument("--steps", type=int, default=60, help="timed optimizer steps per arm")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (a multiple of --log-every)")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--pretraining-batch", type=int, default=256)
    parser.add_argument("--squad-batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of both arms")
    parser.add_argument("--compile", action="store_true", help="add a bertkit arm with torch.compile")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the device's dense bf16 rate")
    parser.add_argument("--smoke", action="store_true", help="bert_tiny, 2 + 2 steps, small batches, no workers")
    parser.add_argument("--allow-cpu", action="store_true", help="measure on the CPU when there is no GPU")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.steps, args.warmup, args.log_every, args.workers = "bert_tiny", 2, 2, 1, 0
        args.pretraining_batch, args.squad_batch = 4, 2
    if args.warmup % args.log_every or args.steps % args.log_every:
        raise SystemExit("--warmup and --steps must be multiples of --log-every (bertkit's timing points)")
    args.batch = {"pretraining": args.pretraining_batch, "squad": args.squad_batch}
    args.length = {"pretraining": 128, "squad": 384}
    if torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
        name = torch.cuda.get_device_name()
    elif args.smoke or args.allow_cpu:
        device, name = torch.device("cpu"), "CPU"
    else:
        raise SystemExit("no CUDA device: this benchmark is for GPUs (--smoke checks the script on a CPU)")

    with tempfile.TemporaryDirectory() as work:
        rows = [row for task in args.tasks for row in measure(task, args, device, Path(work))]
    markdown = table(rows, name, args.peak_tflops)
    print(markdown)
    if args.smoke:
        return  # a check of the script, not a measurement
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gpu_throughput.json").write_text(json.dumps({"device": name, "rows": rows}, indent=1) + "\n")
    (RESULTS / "gpu_throughput.md").write_text(markdown)


if __name__ == "__main__":
    main()
