#!/usr/bin/env bash
# Files in google-research/bert's format (one sentence per line, a blank line between documents), with
# masks fixed at preprocessing and dupe_factor copies, as create_pretraining_data.py does.
# Usage: examples/pretrain_google_format.sh 'path/or/glob/*.txt' [extra Hydra overrides...]
set -euo pipefail
corpus="${1:?give a file, directory or glob of sentence-per-line text}"
shift
exec accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
  --num_cpu_threads_per_process "$(nproc)" \
  bertkit/train.py +experiment=pretrain_tiny name=google_format \
  data.source=sentence_files "data.paths=[${corpus}]" \
  data.masking.mode=static data.dupe_factor=5 \
  "$@"
