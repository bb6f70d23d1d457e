"""The sharded engines a launch asks for (FSDP, DeepSpeed), and whether they can run on this machine.

`accelerate launch` with an FSDP or DeepSpeed config tells the processes so through the environment
(ACCELERATE_USE_FSDP and the FSDP_* settings, ACCELERATE_USE_DEEPSPEED). Accelerate honours them on GPUs only:
on CPUs it trains as plain data parallel without a word (unsharded checkpoints, the whole model on every
process). Here:

- FSDP2 runs on CPU processes too (torch shards over gloo): the plugin is built from the launcher's settings
  and the run's state is made an FSDP one, which Accelerate never does for CPUs by itself.
- FSDP1 and DeepSpeed, which need GPUs, and FSDP on a single process, stop the run with one line.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, parse_flag_from_env
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
from accelerate.utils.other import get_module_children_bottom_up
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from bertkit.core.errors import ConfigError

_CPU_ALTERNATIVES = (
    "on CPUs use FSDP2 (fsdp_version: 2, e.g. examples/accelerate/fsdp_cpu.yaml) or plain data parallel "
    "(examples/accelerate/cpu_multi_process.yaml)"
)


DEEPSPEED_ON_CPU = (
    "DeepSpeed runs on GPUs only, and this run has none (the accelerate config asks for distributed_type: "
    f"DEEPSPEED); {_CPU_ALTERNATIVES}"
)


def cpu_forced() -> bool:
    """Whether the launch put the processes on CPUs though an accelerator may be present."""
    return parse_flag_from_env("ACCELERATE_USE_CPU")


def refuse_engines_without_gpu() -> None:
    """Stop, before any process group forms, a run whose launch asks for DeepSpeed on CPUs."""
    if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED") and (cpu_forced() or not torch.accelerator.is_available()):
        raise ConfigError(DEEPSPEED_ON_CPU)


def cpu_fsdp_plugin(state: PartialState) -> FullyShardedDataParallelPlugin | None:
    """The FSDP2 plugin of a launch that asked for FSDP on CPU processes (None when it did not, or when the
    processes have GPUs, where Accelerate does it itself)."""
    if not parse_flag_from_env("ACCELERATE_USE_FSDP") or state.device.type != "cpu":
        return None
    plugin = FullyShardedDataParallelPlugin()  # its settings come from the launcher's FSDP_* variables
    if plugin.fsdp_version != 2:
        raise ConfigError(
            f"FSDP version {plugin.fsdp_version} needs GPUs and this run has none; set fsdp_version: 2 in the "
            "accelerate config's fsdp_config to shard over CPU processes"
        )
    if state.num_processes < 2:
        raise ConfigError(
            "FSDP asked for on one process: there is nothing to shard over; launch 2 or more processes "
            "(`python -m bertkit.launch --config_file ... --num_processes 2`)"
        )
    return plugin


def adopt_fsdp(accelerator: Accelerator, plugin: FullyShardedDataParallelPlugin) -> None:
    """Make a CPU run's Accelerator shard with `plugin`, as it would on GPUs: prepare() then wraps the model
    with fully_shard and save_state writes sharded checkpoints."""
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    # Accelerator objects made later (evaluation, the optimizer's wrapper) read the shared process state.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def shard_tied_output_together(model: torch.nn.Module, accelerator: Accelerator) -> None:
    """Under FSDP2, shard a model whose output embedding shares parameters beyond the input embedding, before
    the optimizer is built; Accelerate's prepare() then takes it as it is.

    Accelerate puts the output embedding in one unit with the input embedding only. BERT's (and RoBERTa's)
    masked-LM decoder also shares its bias with the prediction head that holds it, so that parameter would sit
    in two units, which torch refuses at the first forward pass. Here every module holding a shared parameter
    is one unit, the auto-wrap policy's blocks that hold none are one unit each, and the rest is the root's.
    """
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if accelerator.is_fsdp2 and get_output is not None else None
    if output is None:
        return
    shared = {id(parameter) for parameter in output.parameters()}
    owners = [
        module for module in model.modules()
        if module is not output and any(id(p) in shared for p in module.parameters(recurse=False))
    ]  # fmt: skip
    inputs = getattr(model, "get_input_embeddings", lambda: None)()
    if all(owner is inputs for owner in owners):
        return  # Accelerate's own grouping covers it
    plugin = accelerator.state.fsdp_plugin
    if plugin.cpu_ram_efficient_loading:
        raise ConfigError(
            "fsdp_cpu_ram_efficient_loading: true (accelerate config) loads the weights on the first process only "
            "and relies on Accelerate's sharding to share them, which this model's tied masked-LM head replaces; "
            "set it to false"
        )
    mesh = getattr(accelerator, "torch_device_mesh", None)
    unit = {
        "mesh": mesh[tuple(accelerator.parallelism_config.fsdp_dim_names)] if mesh is not None else None,
        "mp_policy": plugin.mixed_precision_policy or MixedPrecisionPolicy(),
        "offload_policy": plugin.cpu_offload,
    }
    plugin.set_auto_wrap_policy(model)
    is_block = fsdp2_prepare_auto_wrap_policy(plugin, model) or (lambda module: False)
    for module in get_module_children_bottom_up(model)[:-1]:
        holds_shared = any(id(p) in shared for p in module.parameters())
        if is_block(module) and not holds_shared and not isinstance(module, FSDPModule):
            fully_shard(module, reshard_after_forward=plugin.reshard_after_forward, **unit)
    # Used again at once by the backward pass: kept gathered, as Accelerate keeps its output unit.
    fully_shard([*owners, output], reshard_after_forward=False, **unit)
    fully_shard(model, **unit)
