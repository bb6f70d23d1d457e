"""The `bertkit` command: what to do with a trained model (training itself is `bertkit-train` / train.py).

bertkit predict MODEL_DIR INPUT [--output FILE] [data.KEY=VALUE ...]
bertkit export MODEL_DIR --format onnx --output DIR
"""

from __future__ import annotations

import sys

COMMANDS = {"predict": "bertkit.predict", "export": "bertkit.export"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: bertkit {{{','.join(COMMANDS)}}} ...  (bertkit COMMAND --help for its options)", file=sys.stderr)
        return 2
    import importlib

    return int(importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
