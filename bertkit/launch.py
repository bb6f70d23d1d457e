"""`accelerate launch` as the make targets run it, with two CPU traps closed.

    python -m bertkit.launch [accelerate launch options] bertkit/train.py [overrides]
    python -m bertkit.launch --cpu --num_processes 2 bertkit/train.py ...   # two processes, one gloo group

- `accelerate launch --cpu --num_processes 2` runs ONE process (--cpu always takes the single-process
  launcher), and so does a config file with `use_cpu: true` or `distributed_type: MULTI_CPU` (without
  mpirun). Here they start N processes that train as one group over gloo: the same as
  `ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N`. A config with
  `distributed_type: FSDP` and `use_cpu: true` starts them with FSDP's settings (FSDP2 shards over gloo;
  bertkit.training.engines), and one with DeepSpeed, which needs GPUs, is refused.
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

from bertkit.training.engines import DEEPSPEED_ON_CPU


def main(argv: list[str] | None = None) -> int:
    args = launch_command_parser().parse_args(argv)
    config = load_config_from_file(args.config_file) if args.config_file is not None else None
    if _asks_for_cpu_group(args, config):
        if _asks_for(args, config, DistributedType.DEEPSPEED):
            print(f"bertkit: error: {DEEPSPEED_ON_CPU}", file=sys.stderr)
            return 2
        os.environ["ACCELERATE_USE_CPU"] = "true"  # read by every Accelerator the processes create
        # torchrun's launcher; FSDP keeps its own flag so that its settings reach the processes
        args.cpu = False
        if _asks_for(args, config, DistributedType.FSDP):
            args.use_fsdp = True
        else:
            args.multi_gpu = True
    try:
        launch_command(args)
    except subprocess.CalledProcessError as error:
        return error.returncode
    return 0


def _asks_for_cpu_group(args, config) -> bool:
    """Several processes on CPUs, asked for by --cpu or by the config file (use_cpu, MULTI_CPU)."""
    processes, cpu = args.num_processes, args.cpu
    if config is not None:
        processes = processes or config.num_processes
        cpu = cpu or config.use_cpu or config.distributed_type == DistributedType.MULTI_CPU
    return bool(cpu) and (processes or 1) > 1


def _asks_for(args, config, engine: DistributedType) -> bool:
    flag = {DistributedType.FSDP: args.use_fsdp, DistributedType.DEEPSPEED: args.use_deepspeed}[engine]
    return bool(flag) or (config is not None and config.distributed_type == engine)


if __name__ == "__main__":
    sys.exit(main())
