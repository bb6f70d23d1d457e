"""Run google-research/bert's create_pretraining_data.py as a corpus-building baseline, and count what it built.

Runs under a Python that has TensorFlow (2.x: the script's TF1 calls go to `tensorflow.compat.v1`), not
bertkit's; `corpus_building.py` starts it. The script is imported from a checkout of the repository
(never part of bertkit) and its own `main` is timed, with nothing changed but one counter: the tokenizer
it builds counts the WordPiece tokens it produces. Then the TFRecord file it wrote is read back for the
statistics bertkit's build is compared on. Prints one JSON line.

    TF_CPP_MIN_LOG_LEVEL=2 /path/to/tf-venv/bin/python benchmarks/google_bert_corpus.py \
        --google-bert /path/to/google-research-bert --input corpus.txt --vocab vocab.txt --output out.tfrecord
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--google-bert", required=True, help="a checkout of google-research/bert")
    parser.add_argument("--input", required=True, help="one sentence per line, a blank line between documents")
    parser.add_argument("--vocab", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--dupe-factor", type=int, default=1)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()

    import tensorflow.compat.v1 as tf

    sys.modules["tensorflow"] = tf  # the script was written for TF1's top-level names
    sys.path.insert(0, args.google_bert)
    import create_pretraining_data
    import tokenization

    produced = {"tokens": 0}

    class CountingTokenizer(tokenization.FullTokenizer):
        def tokenize(self, text):
            tokens = super().tokenize(text)
            produced["tokens"] += len(tokens)
            return tokens

    tokenization.FullTokenizer = CountingTokenizer
    flags = create_pretraining_data.FLAGS
    flags([
        "create_pretraining_data.py", f"--input_file={args.input}", f"--output_file={args.output}",
        f"--vocab_file={args.vocab}", "--do_lower_case=True", f"--max_seq_length={args.max_seq_length}",
        "--max_predictions_per_seq=20", "--masked_lm_prob=0.15", f"--random_seed={args.seed}",
        f"--dupe_factor={args.dupe_factor}",
    ])  # fmt: skip
    tf.logging.set_verbosity(tf.logging.WARN)  # it logs its first 20 instances token by token at INFO
    cpu, wall = cpu_seconds(), time.perf_counter()
    create_pretraining_data.main(None)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu

    instances = random_next = lengths = masked = 0
    for record in tf.io.tf_record_iterator(args.output):
        feature = tf.train.Example.FromString(record).features.feature
        instances += 1
        lengths += sum(feature["input_mask"].int64_list.value)
        masked += int(sum(feature["masked_lm_weights"].float_list.value))
        random_next += feature["next_sentence_labels"].int64_list.value[0]
    print(json.dumps({
        "seconds": wall, "cpu_seconds": cpu, "tokens": produced["tokens"], "instances": instances,
        "nsp_random_next_fraction": random_next / instances, "mean_instance_tokens": lengths / instances,
        "masked_fraction": masked / lengths,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
