"""`accelerate launch` as the make targets run it, with two CPU traps closed.

    python -m bertkit.launch [accelerate launch options] bertkit/train.py [overrides]
    python -m bertkit.launch --cpu --num_processes 2 bertkit/train.py ...   # two processes, one gloo group

- `accelerate launch --cpu --num_processes 2` runs ONE process (--cpu always takes the single-process
  launcher), and so does a config file with `use_cpu: true` or `distributed_type: MULTI_CPU` (without
  mpirun). Here they start N processes that train as one group over gloo: the same as
  `ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N`.
- When training stops on bad input, bertkit has already said why in one line; accelerate's launcher would
  then add a traceback of its own (the CalledProcessError of the process it started), burying that line.
  Here the launcher exits with the training process's status instead.

Everything else is accelerate's own launch command.
"""

from __future__ import annotations

import os
import subprocess
import sys

from accelerate.commands.config import load_config_from_file
from accelerate.commands.launch import launch_command, launch_command_parser
from accelerate.utils import DistributedType


def main(argv: list[str] | None = None) -> int:
    args = launch_command_parser().parse_args(argv)
    if _asks_for_cpu_group(args):
        os.environ["ACCELERATE_USE_CPU"] = "true"  # read by every Accelerator the processes create
        args.cpu, args.multi_gpu = False, True
    try:
        launch_command(args)
    except subprocess.CalledProcessError as error:
        return error.returncode
    return 0


def _asks_for_cpu_group(args) -> bool:
    """Several processes on CPUs, asked for by --cpu or by the config file (use_cpu, MULTI_CPU)."""
    processes, cpu = args.num_processes, args.cpu
    if args.config_file is not None:
        defaults = load_config_from_file(args.config_file)
        processes = processes or defaults.num_processes
        cpu = cpu or defaults.use_cpu or defaults.distributed_type == DistributedType.MULTI_CPU
    return bool(cpu) and (processes or 1) > 1


if __name__ == "__main__":
    sys.exit(main())
