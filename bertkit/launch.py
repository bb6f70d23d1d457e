"""`accelerate launch` as the make targets run it: the same launcher, without a traceback of its own.

    python -m bertkit.launch [accelerate launch options] bertkit/train.py [overrides]

When training stops on bad input, bertkit has already said why in one line; accelerate's launcher would
then add a traceback of its own (the CalledProcessError of the process it started), burying that line.
Here the launcher exits with the training process's status instead. Everything else is accelerate's.
"""

from __future__ import annotations

import subprocess
import sys

from accelerate.commands.launch import launch_command, launch_command_parser


def main(argv: list[str] | None = None) -> int:
    args = launch_command_parser().parse_args(argv)
    try:
        launch_command(args)
    except subprocess.CalledProcessError as error:
        return error.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
