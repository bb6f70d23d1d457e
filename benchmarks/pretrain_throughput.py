"""Pretraining step throughput: bertkit's model (MLM logits at masked positions only) against the stock
`BertForPreTraining` (logits at every position), same weights, same batches, same optimizer.

    python benchmarks/pretrain_throughput.py                       # bert_tiny, bert_mini, bert_base
    python benchmarks/pretrain_throughput.py --models bert_tiny --steps 30

Each step is forward, backward and an AdamW update on a batch of sequences of 128 tokens with 15% of the
positions masked (the token ids are random: speed does not depend on them). The two arms alternate step by
step, so a change in machine load hits both alike; the first steps of each arm are warm-up and not timed.
The loss of both arms on the first batch, from the same weights, is reported: it must be equal.
Results go to benchmarks/results/pretrain_throughput.{json,md} (and into `make bench`'s table).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import BertConfig, BertForPreTraining

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from runs import write_results  # noqa: E402

from bertkit.tasks.pretraining.heads import MaskedLMOnlyBertForPreTraining  # noqa: E402

BATCH = {"bert_tiny": 32, "bert_mini": 32, "bert_small": 16, "bert_medium": 16, "bert_base": 8}
VOCAB, SEQ, MASKED = 30522, 128, 0.15


def config(name: str) -> BertConfig:
    sizes = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")
    return BertConfig(
        vocab_size=VOCAB,
        hidden_size=sizes.hidden_size,
        num_hidden_layers=sizes.num_hidden_layers,
        num_attention_heads=sizes.num_attention_heads,
        intermediate_size=sizes.intermediate_size,
        attn_implementation="sdpa",
    )


def batch(size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    input_ids = torch.randint(1000, VOCAB, (size, SEQ), generator=generator)
    masked = torch.rand(size, SEQ, generator=generator) < MASKED
    labels = torch.where(masked, input_ids, torch.full_like(input_ids, -100))
    return {
        "input_ids": torch.where(masked, torch.full_like(input_ids, 103), input_ids),
        "token_type_ids": (torch.arange(SEQ) >= SEQ // 2).long().expand(size, SEQ).contiguous(),
        "attention_mask": torch.ones(size, SEQ, dtype=torch.long),
        "labels": labels,
        "next_sentence_label": torch.randint(0, 2, (size,), generator=generator),
    }


def measure(name: str, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    cfg = config(name)
    stock = BertForPreTraining(cfg)
    ours = MaskedLMOnlyBertForPreTraining(cfg)
    ours.load_state_dict(stock.state_dict())
    generator = torch.Generator().manual_seed(0)
    batches = [batch(BATCH[name], generator) for _ in range(4)]
    with torch.no_grad():
        stock.eval(), ours.eval()
        losses = (float(stock(**batches[0]).loss), float(ours(**batches[0]).loss))
    arms = {"stock": stock, "bertkit": ours}
    optimizers = {arm: torch.optim.AdamW(model.parameters(), lr=1e-4) for arm, model in arms.items()}
    seconds = {arm: 0.0 for arm in arms}
    for model in arms.values():
        model.train()
    for step in range(warmup + steps):
        for arm, model in arms.items():
            started = time.perf_counter()
            model(**batches[step % len(batches)]).loss.backward()
            optimizers[arm].step()
            optimizers[arm].zero_grad(set_to_none=True)
            if step >= warmup:
                seconds[arm] += time.perf_counter() - started
    tokens = steps * BATCH[name] * SEQ
    result = {
        "model": name,
        "batch": f"{BATCH[name]} x {SEQ}",
        "steps": steps,
        "stock_tokens_per_second": tokens / seconds["stock"],
        "bertkit_tokens_per_second": tokens / seconds["bertkit"],
        "loss_stock": losses[0],
        "loss_bertkit": losses[1],
    }
    result["speedup"] = result["bertkit_tokens_per_second"] / result["stock_tokens_per_second"]
    return result


def table(rows: list[dict]) -> str:
    lines = [
        "| model | batch | timed steps | stock BertForPreTraining tok/s | bertkit tok/s | speed-up "
        "| loss stock / bertkit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['steps']} | {r['stock_tokens_per_second']:,.0f} | "
            f"{r['bertkit_tokens_per_second']:,.0f} | **{r['speedup']:.2f}x** | {r['loss_stock']:.5f} / "
            f"{r['loss_bertkit']:.5f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["bert_tiny", "bert_mini", "bert_base"], choices=sorted(BATCH))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per arm (default: by model size)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    default_steps = {"bert_tiny": 30, "bert_mini": 15, "bert_small": 8, "bert_medium": 6, "bert_base": 4}
    rows = [measure(name, args.steps or default_steps[name], args.warmup) for name in args.models]
    write_results("pretrain_throughput", rows, table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
