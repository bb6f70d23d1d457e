"""The command line as users type it: accelerate launch, python bertkit/train.py, python -m bertkit.train."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT, TINY_OVERRIDES

LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--num_processes",
    "1",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]


def run_cli(args: list[str], cwd, cache_dir, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, BERTKIT_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_accelerate_launch_pretrain_tiny_then_resume(tmp_path, cache_dir):
    """A 5-step pretrain_tiny writes metrics.json and a model/ folder that plain transformers loads;
    the same command with a larger budget resumes from the checkpoint instead of starting over."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    args = [
        *LAUNCH,
        str(ROOT / "bertkit" / "train.py"),
        "+experiment=pretrain_tiny",
        *TINY_OVERRIDES,
        "trainer.log_every=1",
    ]
    first = run_cli([*args, "trainer.max_steps=5", "trainer.save_every=5"], workdir, cache_dir)
    assert first.returncode == 0, first.stderr[-3000:]

    run_dir = workdir / "outputs" / "pretrain_tiny" / "seed42"
    assert sorted(p.name for p in workdir.iterdir()) == ["outputs"]  # nothing else in the working directory
    metrics = json.loads((run_dir / "metrics.json").read_text())
    heldout = metrics["heldout"]
    for key in ("mlm_accuracy", "mlm_loss", "perplexity", "nsp_accuracy", "mlm_majority_baseline_accuracy"):
        assert isinstance(heldout[key], float)
    assert metrics["data"]["train"]["instances"] > 0
    for name in ("config.yaml", "log.jsonl", "curves.png", "model/README.md", "model/model.safetensors"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "step_5").is_dir()

    # Loaded in a fresh interpreter that never imports bertkit.
    check = (
        "import sys, json\n"
        "from transformers import BertForPreTraining, pipeline\n"
        "model = BertForPreTraining.from_pretrained(sys.argv[1])\n"
        "assert type(model).__name__ == 'BertForPreTraining'\n"
        "fill = pipeline('fill-mask', model=sys.argv[1])\n"
        "out = fill('The baker opens her [MASK] before the sun rises.')\n"
        "assert len(out) == 5 and all('token_str' in o for o in out)\n"
        "assert 'bertkit' not in sys.modules\n"
        "print('loaded', model.config.architectures)\n"
    )
    loaded = run_cli([sys.executable, "-c", check, str(run_dir / "model")], workdir, cache_dir)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "['BertForPreTraining']" in loaded.stdout

    second = run_cli([*args, "trainer.max_steps=8", "trainer.save_every=4"], workdir, cache_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resumed from" in second.stdout + second.stderr
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1 and 6 in steps  # appended after step 5, never restarted from step 1
    assert (run_dir / "checkpoints" / "step_8").is_dir()


@pytest.mark.parametrize("entry", [["bertkit/train.py"], ["-m", "bertkit.train"]])
def test_entry_points_print_the_composed_config(entry, tmp_path, cache_dir):
    result = run_cli([sys.executable, *entry, "+experiment=pretrain_tiny", "--cfg", "job"], ROOT, cache_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "name: pretrain_tiny" in result.stdout


def test_bad_input_is_one_line_naming_the_setting(tmp_path, cache_dir):
    result = run_cli(
        [
            sys.executable,
            "bertkit/train.py",
            "data.source=sentence_files",
            "data.paths=[/no/such/corpus.txt]",
            f"output_dir={tmp_path / 'run'}",
        ],
        ROOT,
        cache_dir,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bertkit: error: data.paths: '/no/such/corpus.txt' does not exist")
    assert "Traceback" not in result.stderr


def test_typo_in_override_names_the_key(tmp_path, cache_dir):
    result = run_cli([sys.executable, "bertkit/train.py", "trainer.learnig_rate=1e-3"], ROOT, cache_dir)
    assert result.returncode != 0
    assert "trainer.learnig_rate" in result.stderr


def test_make_launcher_leaves_the_one_line_error_alone(tmp_path, cache_dir):
    """`make` targets launch through bertkit.launch: accelerate's launcher, minus its own traceback."""
    result = run_cli(
        [
            sys.executable,
            "-m",
            "bertkit.launch",
            *LAUNCH[3:],
            "bertkit/train.py",
            "data.source=sentence_files",
            "data.paths=[/no/such/corpus.txt]",
            f"output_dir={tmp_path / 'run'}",
        ],
        ROOT,
        cache_dir,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("bertkit: error: data.paths: '/no/such/corpus.txt'")
    assert "Traceback" not in result.stderr
