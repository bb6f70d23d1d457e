"""Processes launched together must train together: the checks that catch the CPU launcher traps."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from accelerate import PartialState

from bertkit.core.errors import ConfigError

_LAUNCHERS = ("accelerate", "accelerate.commands.launch", "bertkit.launch")


def check_process_group(processes: PartialState) -> None:
    """Refuse processes that were launched together but do not train together.

    Two traps of CPU-only machines: `accelerate launch --num_processes 2` without ACCELERATE_USE_CPU=true
    starts two processes that each train alone, and `accelerate launch --cpu --num_processes 2` starts one.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    asked = processes_asked_of_launcher()
    if launched != processes.num_processes or (asked or 1) > processes.num_processes:
        count = max(launched, asked or 1)
        raise ConfigError(
            f"{count} processes were asked for, but they do not form one training group (this process sees "
            f"{processes.num_processes}); on CPUs launch with `python -m bertkit.launch --cpu --num_processes "
            f"{count} ...` or `make ... PROCESSES={count}` (gloo), or set ACCELERATE_USE_CPU=true with --multi_gpu"
        )


def processes_asked_of_launcher() -> int | None:
    """--num_processes of the `accelerate launch` that started this process, read from its command line
    (Linux /proc); None when the parent is no accelerate launcher or cannot be read."""
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    if not any(part.endswith(_LAUNCHERS) for part in argv[:3]):
        return None
    options = launcher_options(argv)
    if options.get("--num_processes", "").isdigit():
        return int(options["--num_processes"])
    if "--config_file" in options:
        try:
            launch_config = yaml.safe_load(Path(options["--config_file"]).read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        processes = launch_config.get("num_processes")
        return processes if isinstance(processes, int) else None
    return None


def launcher_options(argv: list[str]) -> dict[str, str]:
    """The launcher's `--option value` and `--option=value` pairs, up to the training script."""
    options: dict[str, str] = {}
    for i, part in enumerate(argv):
        if part.endswith(".py"):  # the script; what follows are its own arguments
            break
        if part.startswith("--") and "=" in part:
            options[part.split("=", 1)[0]] = part.split("=", 1)[1]
        elif part.startswith("--") and i + 1 < len(argv):
            options[part] = argv[i + 1]
    return options
