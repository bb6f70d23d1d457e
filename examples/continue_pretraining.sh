#!/usr/bin/env bash
# Continue MLM + NSP pretraining from a checkpoint (a folder or a Hub id). all-MiniLM-L6-v2 has no
# pretraining heads: bertkit says so and trains them from random initialisation. The checkpoint's own
# tokenizer is used, so its vocabulary matches the embeddings.
# Usage: examples/continue_pretraining.sh [CHECKPOINT] [extra Hydra overrides...]
set -euo pipefail
checkpoint="${1:-../shared/models/all-MiniLM-L6-v2}"
shift || true
exec accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
  --num_cpu_threads_per_process "$(nproc)" \
  bertkit/train.py +experiment=pretrain_tiny name=continued \
  model=pretrained "model.name_or_path=${checkpoint}" \
  trainer.learning_rate=1e-4 trainer.max_steps=500 \
  "$@"
