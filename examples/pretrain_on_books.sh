#!/usr/bin/env bash
# Pretrain bert_mini on plain-prose books: one document per file, sentences split by Bling Fire.
# Usage: examples/pretrain_on_books.sh [BOOKS_DIR] [extra Hydra overrides...]
set -euo pipefail
books="${1:-../shared/data/text/gutenberg}"
shift || true
exec accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
  --num_cpu_threads_per_process "$(nproc)" \
  bertkit/train.py +experiment=pretrain_tiny name=books \
  data.source=prose_files "data.paths=[${books}]" \
  model=bert_mini trainer.learning_rate=5e-4 trainer.max_steps=3000 trainer.max_minutes=null \
  "$@"
