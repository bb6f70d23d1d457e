"""Collect the latest results of every benchmark into benchmarks/results/bench.md and bench.json."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = {
    "pretrain_throughput": "Pretraining step throughput (python benchmarks/pretrain_throughput.py)",
    "finetune_throughput": "Fine-tuning throughput on real GLUE sentences (python benchmarks/finetune_throughput.py)",
    "corpus_building": "Corpus building vs google-research/bert (python benchmarks/corpus_building.py)",
    "pretrain_end_to_end": "End-to-end make pretrain (python benchmarks/pretrain_end_to_end.py)",
    "gpu_throughput": "GPU training throughput, bf16 (python benchmarks/gpu_throughput.py)",
    "corpus_memory": "Corpus building memory, Gutenberg x1 vs x10 (python benchmarks/corpus_memory.py)",
    "glue_accuracy": "GLUE accuracy vs plain HF (python benchmarks/glue_accuracy.py)",
    "squad_accuracy": "SQuAD accuracy vs plain HF (python benchmarks/accuracy.py squad)",
    "ner_accuracy": "CoNLL-2003 accuracy vs plain HF (python benchmarks/accuracy.py ner)",
    "openbookqa_accuracy": "OpenBookQA accuracy vs plain HF (python benchmarks/accuracy.py openbookqa)",
    "pretrain_objectives": "Pretraining objectives, make pretrain (python benchmarks/pretrain_objectives.py)",
}


def main() -> None:
    markdown, collected = ["# bertkit benchmarks: latest results", ""], {}
    for name, title in SECTIONS.items():
        table, data = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
        if not table.exists():
            continue
        markdown += [f"## {title}", "", table.read_text().strip(), ""]
        if data.exists():
            collected[name] = json.loads(data.read_text())
    (RESULTS / "bench.md").write_text("\n".join(markdown))
    (RESULTS / "bench.json").write_text(json.dumps(collected, indent=1) + "\n")
    print("\n".join(markdown))


if __name__ == "__main__":
    main()
