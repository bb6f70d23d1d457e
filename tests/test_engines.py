"""Sharded engines and several machines, proven on this CPU machine: FSDP2 over two gloo processes (sharded
checkpoints, kill and resume, a gathered model/), two "machines" on one host, and the engines that need GPUs
(FSDP1, DeepSpeed) refused in one line. The DeepSpeed ZeRO-2 example is validated as Accelerate reads it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import pytest
import yaml
from accelerate.commands.config import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env
from safetensors.torch import load_file
from transformers import AutoModelForPreTraining

from bertkit.training import engines

from .conftest import GLUE_FIXTURES, ROOT
from .test_distributed import ONE, PRETRAIN, TRAIN, TWO, launch, metrics, succeeds

pytestmark = pytest.mark.slow

EXAMPLES = ROOT / "examples" / "accelerate"
FSDP = [sys.executable, "-m", "bertkit.launch", "--config_file", str(EXAMPLES / "fsdp_cpu.yaml"),
        "--num_cpu_threads_per_process", "1", "--main_process_port", "0"]  # fmt: skip
# Dropout on, two epochs' worth of steps, a checkpoint every 2: the resumed run must replay all of it.
FSDP_RUN = [*PRETRAIN, "data.dupe_factor=4", "trainer.max_steps=8", "trainer.save_every=2", "trainer.keep_last=2"]


def weights(run_dir: Path) -> dict:
    return load_file(run_dir / "model" / "model.safetensors")


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), f"{name} differs"


def logged_step(run_dir: Path) -> int:
    log = run_dir / "log.jsonl"
    return log.read_text().count('"loss"') if log.is_file() else 0


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    succeeds(FSDP, [*FSDP_RUN, f"output_dir={root / 'run'}"], root / "cache")
    return root


def test_fsdp2_on_two_cpu_processes_shards_and_gathers_a_plain_model(fsdp_run):
    run_dir = fsdp_run / "run"
    assert metrics(run_dir)["throughput"]["distributed_type"] == "FSDP"
    shards = sorted(p.name for p in (run_dir / "checkpoints" / "step_8" / "pytorch_model_fsdp_0").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]  # one shard per process, no whole copy
    assert not (run_dir / "checkpoints" / "step_8" / "model.safetensors").exists()
    model, info = AutoModelForPreTraining.from_pretrained(run_dir / "model", output_loading_info=True)
    assert not any(info.values()), info
    saved = weights(run_dir)
    assert "cls.predictions.decoder.weight" not in saved  # tied back on load, not saved twice
    assert (model.cls.predictions.decoder.weight == saved["bert.embeddings.word_embeddings.weight"]).all()


def test_fsdp2_killed_mid_run_resumes_to_the_same_weights(fsdp_run, tmp_path):
    run_dir, cache_dir = tmp_path / "run", fsdp_run / "cache"
    env = dict(os.environ, BERTKIT_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("ACCELERATE_USE_CPU", None)
    command = [*FSDP, TRAIN, *FSDP_RUN, f"output_dir={run_dir}"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while logged_step(run_dir) < 5 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both training processes
    process.wait()
    assert 0 < logged_step(run_dir) < 8 and (run_dir / "checkpoints" / "step_4").is_dir()
    resumed = succeeds(FSDP, [*FSDP_RUN, f"output_dir={run_dir}"], cache_dir)
    assert "Resumed from" in resumed.stderr + resumed.stdout
    assert_identical(weights(run_dir), weights(fsdp_run / "run"))


def test_two_machines_on_one_host_train_as_one_group(tmp_path, cache_dir, tiny_checkpoint):
    """two_nodes.yaml with machine ranks 0 and 1 on 127.0.0.1 (one process each, gloo) equals one machine with
    two processes exactly, and one process with the same global batch up to float order."""
    task = ["+experiment=glue_mrpc", f"data.glue_dir={GLUE_FIXTURES}", f"model.name_or_path={tiny_checkpoint}",
            "trainer.max_steps=4", "trainer.progress_bar=false", "model.hidden_dropout_prob=0",
            "model.attention_probs_dropout_prob=0", "data.predict=false"]  # fmt: skip
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    machine = [sys.executable, "-m", "bertkit.launch", "--config_file", str(EXAMPLES / "two_nodes.yaml"), "--cpu",
               "--num_processes", "2", "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
               "--num_cpu_threads_per_process", "1", "--mixed_precision", "no"]  # fmt: skip
    env = dict(os.environ, BERTKIT_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
    env.pop("ACCELERATE_USE_CPU", None)
    args = [TRAIN, *task, "trainer.per_device_batch_size=4", f"output_dir={tmp_path / 'machines'}"]
    second = subprocess.Popen([*machine, "--machine_rank", "1", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    first = subprocess.run([*machine, "--machine_rank", "0", *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    second_output = second.communicate(timeout=120)[0]
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-3000:] + second_output[-3000:]
    assert metrics(tmp_path / "machines")["throughput"]["processes"] == 2

    succeeds(TWO, [*task, "trainer.per_device_batch_size=4", f"output_dir={tmp_path / 'two'}"], cache_dir)
    succeeds(ONE, [*task, "trainer.per_device_batch_size=8", f"output_dir={tmp_path / 'one'}"], cache_dir)
    machines, one = weights(tmp_path / "machines"), weights(tmp_path / "one")
    assert_identical(machines, weights(tmp_path / "two"))
    for name in machines:
        assert (machines[name] - one[name]).abs().max() < 1e-5, name


def test_deepspeed_asked_for_on_cpus_is_refused_by_the_launcher(tmp_path, cache_dir):
    config = yaml.safe_load((EXAMPLES / "deepspeed_zero2.yaml").read_text()) | {"use_cpu": True, "num_processes": 2}
    (tmp_path / "deepspeed_cpu.yaml").write_text(yaml.safe_dump(config))
    launcher = [sys.executable, "-m", "bertkit.launch", "--config_file", str(tmp_path / "deepspeed_cpu.yaml")]
    result = launch(launcher, [*PRETRAIN, f"output_dir={tmp_path / 'run'}"], cache_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"bertkit: error: {engines.DEEPSPEED_ON_CPU}"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_USE_CPU": "true"}, "DeepSpeed runs on GPUs only"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"}, "FSDP version 1 needs GPUs"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, "FSDP asked for on one process"),
    ],
    ids=["deepspeed", "fsdp1", "fsdp-one-process"],
)
def test_engines_that_cannot_run_here_stop_the_run_in_one_line(environment, message, tmp_path, cache_dir):
    with patch.dict(os.environ, environment):
        result = launch(ONE, [*PRETRAIN, f"output_dir={tmp_path / 'run'}"], cache_dir)
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("bertkit: error:")]
    assert len(error) == 1 and message in error[0], result.stderr[-2000:]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_fsdp_on_gpus_is_left_to_accelerate():
    on_gpu = SimpleNamespace(device=SimpleNamespace(type="cuda"), num_processes=8)
    with patch.dict(os.environ, {"ACCELERATE_USE_FSDP": "true"}):
        assert engines.cpu_fsdp_plugin(on_gpu) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("config", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_launch_config_is_read_by_accelerate(config):
    assert load_config_from_file(str(config)).num_processes >= 1


def test_the_deepspeed_zero2_example_builds_accelerates_plugin():
    """What `accelerate launch --config_file deepspeed_zero2.yaml` hands the processes, read back into the
    plugin Accelerate builds from it (DeepSpeed itself is GPU-only and not installed here)."""
    args = launch_command_parser().parse_args(["--config_file", str(EXAMPLES / "deepspeed_zero2.yaml"), TRAIN])
    args, defaults, _ = _validate_launch_command(args)
    args.deepspeed_fields_from_accelerate_config = ",".join([*defaults.deepspeed_config, "mixed_precision"])
    _, environment = prepare_deepspeed_cmd_env(args)
    with patch.dict(os.environ, environment):
        plugin = DeepSpeedPlugin()
    assert plugin.zero_stage == 2
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["offload_optimizer"]["device"] == "none" and zero["offload_param"]["device"] == "none"
    # Accumulation and clipping are left to the run config, which bertkit hands to Accelerate.
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"
    assert plugin.deepspeed_config["gradient_clipping"] == "auto"
