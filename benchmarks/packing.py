"""Packed batches (`data.packing=true`) against bertkit's padded batches: real tokens per second of training
steps, on real data, in one run.

    python benchmarks/packing.py                                  # all three workloads, 1 CPU thread
    python benchmarks/packing.py --workloads sst2 --steps 10

Workloads:
- pretrain: `bert_base` (random weights), MLM + NSP instances of 128 tokens built by bertkit's pretraining
  recipe from the Gutenberg novels in ../shared (tokenizer: all-MiniLM-L6-v2's uncased WordPiece, BERT's
  30,522 tokens), batch 8;
- sst2, mrpc: all-MiniLM-L6-v2 fine-tuned on the GLUE training sets by bertkit's data recipe, batch 32.

Both arms get the same batches (bertkit's collators, dynamic padding to a multiple of 8), start from the same
weights, and alternate step by step (forward, backward, AdamW), so load on the machine hits both alike; the
first steps are warm-up. Packing changes the layout only: the fine-tuned arms are then scored on the dev set,
and the pretraining arms' losses on each step compared; both must agree to float noise.
Results go to benchmarks/results/packing.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from runs import write_results  # noqa: E402

from bertkit import config, model, preprocess  # noqa: E402
from bertkit.packing import enable_packing, layout_for  # noqa: E402
from bertkit.training.trainer import KeyedDataset  # noqa: E402

SHARED = ROOT.parent / "shared"
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
WORKLOADS = {
    "pretrain": ["+experiment=pretrain_bert_base", f"tokenizer.name_or_path={MINILM}",
                 "trainer.per_device_batch_size=8"],
    "pretrain_novels": ["+experiment=pretrain_bert_base", "data.source=prose_files",
                        f"data.paths=[{SHARED / 'data' / 'text' / 'gutenberg'}]", f"tokenizer.name_or_path={MINILM}",
                        "data.max_documents=6", "trainer.per_device_batch_size=8"],
    "sst2": ["+experiment=glue_sst2", f"model.name_or_path={MINILM}", "trainer.per_device_batch_size=32"],
    "mrpc": ["+experiment=glue_mrpc", f"model.name_or_path={MINILM}", "trainer.per_device_batch_size=32"],
}  # fmt: skip


def built(workload: str, args):
    """The workload's padded model, a packed copy of it, and its data, as a training run would build them."""
    config.register_configs()
    glue = [f"data.glue_dir={args.glue_dir}"] if not workload.startswith("pretrain") else []
    overrides = [*WORKLOADS[workload], *glue, f"cache_dir={args.cache_dir}",
                 "model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0"]  # fmt: skip
    with initialize_config_dir(config_dir=config.CONFIG_DIR, version_base="1.3"):
        run_cfg = config.load(compose("train", overrides=overrides))
    task, architecture = preprocess.checked_task(run_cfg)
    _, data = preprocess.build_inputs(run_cfg, task, architecture)
    torch.manual_seed(0)
    padded = model.build_model(run_cfg.model, data.spec, task.head(run_cfg.model)).model
    packed = copy.deepcopy(padded)
    enable_packing(packed, longest_row=args.longest_row or data.spec.max_seq_length)
    return padded, packed, data, run_cfg.trainer.per_device_batch_size


def measure(workload: str, args) -> dict:
    padded, packed, data, batch_size = built(workload, args)
    arms = {"padded": padded, "packed": packed}
    optimizers = {arm: torch.optim.AdamW(m.parameters(), lr=2e-5, weight_decay=0.01) for arm, m in arms.items()}
    loader = DataLoader(KeyedDataset(data.train), batch_size=batch_size, shuffle=True, collate_fn=data.collate_train,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    seconds, losses, real, slots = dict.fromkeys(arms, 0.0), {arm: [] for arm in arms}, 0, {"padded": 0, "packed": 0}
    for step, batch in enumerate(loader):
        if step == args.warmup + args.steps:
            break
        inputs = dict(batch)
        for arm, m in arms.items():
            m.train()
            started = time.perf_counter()
            loss = m(**inputs).loss
            loss.backward()
            optimizers[arm].step()
            optimizers[arm].zero_grad(set_to_none=True)
            if step >= args.warmup:
                seconds[arm] += time.perf_counter() - started
                losses[arm].append(loss.item())
        if step >= args.warmup:
            real += int(batch["attention_mask"].sum())
            slots["padded"] += batch["attention_mask"].numel()
            slots["packed"] += _packed_slots(
                batch["attention_mask"], args.longest_row or data.spec.max_seq_length, padded.config
            )
    result = {
        "workload": workload, "steps": args.steps, "threads": torch.get_num_threads(),
        "real_tokens_per_padded_slot": real / slots["padded"], "real_tokens_per_packed_slot": real / slots["packed"],
        "tokens_per_second": {arm: real / seconds[arm] for arm in arms},
        "speedup": seconds["padded"] / seconds["packed"],
        "largest_loss_difference": max(abs(a - b) for a, b in zip(losses["padded"], losses["packed"], strict=True)),
    }  # fmt: skip
    if "validation" in data.evaluation:
        result["dev_accuracy"] = {arm: dev_accuracy(m, data) for arm, m in arms.items()}
    return result


def _packed_slots(mask: torch.Tensor, longest_row: int, config) -> int:
    """Token slots of the packed rows the batch gets in training."""
    return layout_for(config, mask.reshape(-1, mask.shape[-1]), longest_row).sequence_ids.numel()


@torch.no_grad()
def dev_accuracy(m, data) -> float:
    m.eval()
    correct = total = 0
    for batch in DataLoader(data.evaluation["validation"], batch_size=64, collate_fn=data.collate_eval):
        inputs = dict(batch)
        labels = inputs.pop("labels")
        correct += int((m(**inputs).logits.argmax(-1) == labels).sum())
        total += len(labels)
    return correct / total


def table(rows: list[dict]) -> str:
    lines = ["| workload | real tokens per slot, padded / packed | padded tokens/s | packed tokens/s | speed-up | "
             "largest loss difference | dev accuracy padded / packed |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        dev = r.get("dev_accuracy")
        scores = f"{dev['padded']:.4f} / {dev['packed']:.4f}" if dev else "-"
        lines.append(
            f"| {r['workload']} | {r['real_tokens_per_padded_slot']:.2f} / {r['real_tokens_per_packed_slot']:.2f} | "
            f"{r['tokens_per_second']['padded']:,.0f} | {r['tokens_per_second']['packed']:,.0f} | "
            f"{r['speedup']:.2f}x | {r['largest_loss_difference']:.1e} | "
            f"{scores} |"
        )
    return "\n".join(lines) + f"\n\n{rows[0]['steps']} timed steps per arm, {rows[0]['threads']} CPU thread(s).\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--longest-row", type=int, default=None, help="default: data.max_seq_length, as in training")
    parser.add_argument("--glue-dir", type=Path, default=SHARED / "data" / "glue_data")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "outputs" / "bench_cache")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(workload, args) for workload in args.workloads]
    write_results("packing", rows, table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
