"""The hostile-input suite, whole runs: a new user's mistakes that used to train the wrong thing silently, lose
or falsify results, or end in a traceback. Each test's docstring is the reproduction (FT: a tiny fine-tuning
run of your own CSV on a tiny BERT checkpoint, `data=custom model=pretrained trainer=finetune ...`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer, BertConfig, BertForPreTraining, RobertaConfig, RobertaForMaskedLM

from bertkit import train
from bertkit.core.errors import ConfigError, DataError, ModelError
from bertkit.settings import TokenizerConfig
from bertkit.tasks.pretraining.config import PretrainCorpusConfig
from bertkit.training.stopping import TrainingError

from .conftest import ROOT, TINY_CORPUS, compose_config, wordpiece

WORDS = "good bad great awful fine poor nice dull movie plot".split()


def write_csv(path: Path, labels: list[str], rows: int = 40, header: str = "text,label") -> Path:
    lines = [header] + [f"{WORDS[i % 10]} {WORDS[(3 * i) % 10]} {WORDS[(7 * i + 1) % 10]},{labels[i % len(labels)]}"
                        for i in range(rows)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def ft(tmp_path, cache_dir, tiny_checkpoint):
    """The overrides of FT: a 3-step fine-tuning run of `train_file` into tmp_path/run (or `output_dir=`)."""

    def make(train_file: Path, *extra: str) -> list[str]:
        base = {
            "model.name_or_path": str(tiny_checkpoint),
            "data.train_file": str(train_file),
            "trainer.max_steps": "3",
            "trainer.per_device_batch_size": "8",
            "trainer.eval_batch_size": "16",
            "trainer.progress_bar": "false",
            "output_dir": str(tmp_path / "run"),
            "cache_dir": str(cache_dir),
        }
        chosen = {item.split("=", 1)[0] for item in extra}
        overrides = [f"{k}={v}" for k, v in base.items() if k not in chosen]
        return ["data=custom", "model=pretrained", "trainer=finetune", *overrides, *extra]

    return make


def run(overrides: list[str]):
    return train.run(compose_config(overrides))


def fails(error_type, pattern: str, overrides: list[str]):
    with pytest.raises(error_type, match=pattern) as error:
        run(overrides)
    assert "\n" not in str(error.value), "the message must be a single line"
    return error.value


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------- inputs in the run's identity


def test_a_changed_data_file_is_not_resumed(ft, tmp_path):
    """FT with trainer.save_every=2; rewrite the training file in place with other rows and labels neg/pos; the
    same command said "Resumed from step_3" and rewrote metrics.json, predictions/ and model/config.json with
    neg/pos for weights trained on 0/1."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data, "trainer.save_every=2"))
    before = snapshot(tmp_path / "run")
    write_csv(data, ["neg", "pos"], rows=30)
    fails(ConfigError, r"data\.train_file: .*train\.csv changed since the run in .* started \(the content of "
          r"train\.csv changed\)", ft(data, "trainer.save_every=2"))  # fmt: skip
    assert snapshot(tmp_path / "run") == before


def test_a_forced_resume_with_a_changed_input_is_recorded(ft, tmp_path):
    """The same, continued on purpose with trainer.resume=force and more steps: the change is in history.jsonl,
    and config.yaml stays the first one."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data, "trainer.save_every=2"))
    config_before = (tmp_path / "run" / "config.yaml").read_text()
    write_csv(data, ["0", "1"], rows=48)
    run(ft(data, "trainer.save_every=2", "trainer.resume=force", "trainer.max_steps=4"))
    assert (tmp_path / "run" / "config.yaml").read_text() == config_before
    (entry,) = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert entry["resumed_at_step"] == 3 and entry["resume"] == "force"
    assert entry["settings"]["trainer.max_steps"] == [3, 4]
    assert "train.csv" in entry["inputs"]["data.train_file"]
    # The record now holds the new file: a plain resume of this state is accepted.
    run(ft(data, "trainer.save_every=2", "trainer.max_steps=4"))
    # The results of step 3 were not overwritten by those of step 4: they were kept aside.
    assert (tmp_path / "run" / "earlier" / "step_3" / "model" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["throughput"]["steps"] == 4


def test_the_same_place_spelled_twice_is_one_run(ft, tmp_path, monkeypatch):
    """FT into runs/5, then output_dir=runs/5/ and runs/x/../5 (and the data file by another spelling): each
    was refused as "another configuration"."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data, "trainer.save_every=3"))
    before = snapshot(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    for spelled in (f"{tmp_path}/run/", "x/../run", "./run"):
        scores = run(ft(Path("./train.csv"), f"output_dir={spelled}", "trainer.save_every=3"))
        assert scores["validation"]["examples"] == 4
    assert snapshot(tmp_path / "run") == before


def test_an_input_set_or_unset_on_resume_is_named(ft, tmp_path):
    """Adding data.validation_file to a run changes what it is evaluated on: refused, naming the setting."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data, "trainer.save_every=2"))
    validation = write_csv(tmp_path / "dev.csv", ["0", "1"], rows=8)
    overrides = ft(data, "trainer.save_every=2", "trainer.max_steps=4", f"data.validation_file={validation}")
    fails(
        ConfigError, r"invalid setting data\.validation_file: .*dev\.csv changed since .*\(it is set now\)", overrides
    )


def test_a_run_that_failed_before_its_first_checkpoint_can_be_fixed(ft, tmp_path):
    """A run that stopped after claiming its folder but before any checkpoint (a NaN at step 5, say) has nothing
    to continue: the fixed command starts over, keeping the failed start's files aside."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data))
    for name in ("metrics.json", "model", "predictions", "curves.png", "checkpoints"):  # as if it died in step 1
        path = tmp_path / "run" / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    run(ft(data, "trainer.learning_rate=1e-5"))
    assert (tmp_path / "run.prev-1" / "config.yaml").is_file()
    assert "learning_rate: 1.0e-05" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_run_recorded_before_inputs_json_still_resumes(ft, tmp_path):
    """Runs recorded before bertkit kept inputs.json had the preset's sizes in config.yaml: still the same run."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data, "trainer.save_every=2", "trainer.max_steps=2"))
    (tmp_path / "run" / "inputs.json").unlink()
    recorded = (tmp_path / "run" / "config.yaml").read_text()
    (tmp_path / "run" / "config.yaml").write_text(recorded.replace("hidden_size: 32", "hidden_size: 128"))
    run(ft(data, "trainer.save_every=2", "trainer.max_steps=3"))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["throughput"]["steps"] == 3


def test_a_checkpoint_runs_recorded_architecture_is_not_compared(ft, tmp_path):
    """model.architecture of a checkpoint run is the checkpoint's model type, which its fingerprint follows.
    Records from before bertkit kept it read as the schema's default (bert), even for a RoBERTa checkpoint."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data, "trainer.save_every=2", "trainer.max_steps=2"))
    recorded = (tmp_path / "run" / "config.yaml").read_text()
    assert "architecture: bert" in recorded
    (tmp_path / "run" / "config.yaml").write_text(recorded.replace("architecture: bert", "architecture: roberta"))
    run(ft(data, "trainer.save_every=2", "trainer.max_steps=3"))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["throughput"]["steps"] == 3


def test_a_folder_that_is_no_run_is_moved_aside_unless_it_holds_inputs(ft, tmp_path):
    """A folder of other files is kept whole at DIR.prev-1; one that holds this run's own data is refused."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    run(ft(data))
    assert (tmp_path / "run.prev-1" / "notes.txt").read_text() == "mine"
    (tmp_path / "data").mkdir()
    inside = write_csv(tmp_path / "data" / "train.csv", ["0", "1"])
    fails(ConfigError, r"holds no run to continue and it holds the files of data\.train_file, so bertkit will not "
          r"move it aside", ft(inside, f"output_dir={tmp_path / 'data'}"))  # fmt: skip
    assert (tmp_path / "data" / "train.csv").is_file()


# ------------------------------------------------------------------------------- a checkpoint loads or the run stops


def test_a_checkpoint_of_another_architecture_stops_pretraining_before_any_work(tiny_run, tmp_path, tiny_checkpoint):
    """A RoBERTa checkpoint as model.name_or_path trained a BERT from random weights with exit 0: only a warning
    said "no weights for bert.embeddings, bert.encoder" and the model card claimed "continued from" it.
    Fine-tuning now loads any encoder through the Auto classes (tests/test_encoders.py); pretraining's heads
    are BERT's, and it says so."""
    roberta = tmp_path / "roberta"
    RobertaForMaskedLM(RobertaConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64)).save_pretrained(roberta)  # fmt: skip
    overrides = tiny_run(
        "model=pretrained", f"model.name_or_path={roberta}", f"tokenizer.name_or_path={tiny_checkpoint}"
    )
    fails(ModelError, r"model\.name_or_path=.*roberta' is a roberta checkpoint \(RobertaForMaskedLM\); this task "
          r"trains a BERT", overrides)  # fmt: skip
    assert not (tmp_path / "run").exists()


def misdescribed_checkpoint(folder: Path, tokenizer_from: Path, sizes: dict, claimed: dict) -> Path:
    """A BERT checkpoint (weights of `sizes`, the tiny tokenizer) whose config.json then claims `claimed`."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64} | sizes
    BertForPreTraining(BertConfig(vocab_size=len(tokenizer), max_position_embeddings=128, **shape)).save_pretrained(
        folder
    )
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | claimed))
    return folder


def test_a_bert_checkpoint_whose_weights_do_not_fit_stops_the_run(ft, tmp_path, tiny_checkpoint):
    """A config.json that does not describe its weights (other sizes): the encoder would start from random."""
    odd = misdescribed_checkpoint(tmp_path / "odd", tiny_checkpoint, {"hidden_size": 48}, {"hidden_size": 32})
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    overrides = ft(data, f"model.name_or_path={odd}")
    fails(ModelError, r"has no usable weights for bert\.embeddings, bert\.encoder: its weights do not fit", overrides)


def test_encoder_weights_left_over_stop_the_run(ft, tmp_path, tiny_checkpoint):
    """A config.json with fewer layers than its weights would train a truncated encoder."""
    cut = misdescribed_checkpoint(tmp_path / "cut", tiny_checkpoint, {}, {"num_hidden_layers": 1})
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    fails(
        ModelError,
        r"has weights left over for bert\.encoder: its weights do not fit",
        ft(data, f"model.name_or_path={cut}"),
    )


def test_the_card_and_the_log_name_exactly_the_fresh_head(ft, tmp_path, caplog):
    """Only task heads start fresh, and the warning and the model card say which."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    with caplog.at_level(logging.WARNING, logger="bertkit.model"):
        run(ft(data))
    assert "has no weights for classifier:" in caplog.text
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "(its `classifier` started from random initialisation)" in card


def test_a_foreign_tokenizer_is_refused_before_tokenizing(ft, tmp_path, cache_dir):
    """MiniLM with tokenizer.name_or_path= the 8,192-token vocabulary of `make pretrain` trained without a word."""
    foreign = wordpiece(TokenizerConfig(vocab_size=300, min_frequency=1),
                        PretrainCorpusConfig(source="sentence_files", paths=[str(TINY_CORPUS)]), cache_dir)  # fmt: skip
    foreign.save_pretrained(tmp_path / "foreign")
    unread = tmp_path / "unread.csv"
    unread.write_text("")  # refused before the data is read: reading it would fail otherwise
    pattern = (
        r"tokenizer\.name_or_path=.*foreign' \(\d+ tokens, \[CLS\]=2, .*\) is not the vocabulary of "
        r"model\.name_or_path=.*\(\d+ tokens"
    )
    fails(ModelError, pattern, ft(unread, f"tokenizer.name_or_path={tmp_path / 'foreign'}"))
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_without_a_tokenizer_must_match_its_size(ft, tmp_path, tiny_checkpoint):
    """Without the checkpoint's own tokenizer to compare, its embedding rows and [PAD] must match."""
    bare = tmp_path / "bare"
    BertForPreTraining(BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64)).save_pretrained(bare)  # fmt: skip
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    fails(ModelError, r"has \d+ tokens but model\.name_or_path=.*bare' embeds 500: they do not belong together",
          ft(data, f"model.name_or_path={bare}", f"tokenizer.name_or_path={tiny_checkpoint}"))  # fmt: skip


# ------------------------------------------------------------------------------- evaluate-only


def test_evaluate_only_names_predictions_with_the_checkpoint_labels(ft, tmp_path):
    """trainer.max_steps=0 with a fine-tuned model/ took its labels from the training file given, so a 0/1 model
    predicted "pos"/"neg"; with a 5-class file and a 2-class checkpoint a random head was "evaluated" and saved."""
    data = write_csv(tmp_path / "train.csv", ["neg", "pos"])
    trained = run(ft(data))
    model = tmp_path / "run" / "model"
    scores = run(ft(data, f"model.name_or_path={model}", "trainer.max_steps=0", f"output_dir={tmp_path / 'eval'}"))
    assert scores["validation"] == trained["validation"]
    assert (tmp_path / "eval" / "predictions").exists()
    assert json.loads((tmp_path / "eval" / "model" / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}

    other = write_csv(tmp_path / "other.csv", ["0", "1"])
    fails(DataError, r"the data has label\(s\) \['0', '1'\] that model\.name_or_path=.* does not know \(its labels: "
          r"\['neg', 'pos'\]\)", ft(other, f"model.name_or_path={model}", "trainer.max_steps=0",
                                    f"output_dir={tmp_path / 'eval2'}"))  # fmt: skip
    five = write_csv(tmp_path / "five.csv", ["neg", "pos", "a", "b", "c"])
    fails(DataError, r"label\(s\) \['a', 'b', 'c'\]", ft(five, f"model.name_or_path={model}", "trainer.max_steps=0",
                                                         f"output_dir={tmp_path / 'eval3'}"))  # fmt: skip
    assert not (tmp_path / "eval2").exists() and not (tmp_path / "eval3").exists()


def test_a_fresh_head_cannot_be_evaluated(ft, tmp_path):
    """trainer.max_steps=0 on a checkpoint without a classifier "evaluated" a random head."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    fails(ModelError, r"trainer\.max_steps=0 evaluates .* has no weights for classifier: a random head cannot be "
          r"evaluated", ft(data, "trainer.max_steps=0"))  # fmt: skip
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------- records are never rewritten


def test_force_on_a_finished_run_rewrites_nothing_and_never_moves_it_aside(ft, tmp_path):
    """trainer.resume=force on a finished run trained nothing, yet rewrote config.yaml, the card and
    metrics.json with the new setting; a following trainer.resume=never retrained over the original model/."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data, "trainer.save_every=3"))
    before = snapshot(tmp_path / "run")
    run(ft(data, "trainer.save_every=3", "trainer.resume=force", "trainer.learning_rate=1e-3"))
    assert snapshot(tmp_path / "run") == before
    run(ft(data, "trainer.save_every=3", "trainer.resume=never", "trainer.learning_rate=1e-3"))
    assert snapshot(tmp_path / "run.prev-1") == before
    assert "learning_rate: 0.001" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_finished_run_without_checkpoints_is_not_redone(ft, tmp_path):
    """Without checkpoints there is nothing to continue: the same command keeps the results; a bigger budget is
    refused rather than retrained over them."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    no_evaluations = "trainer.eval_every_epoch=false"  # (evaluations during training keep a last checkpoint)
    run(ft(data, no_evaluations))
    before = snapshot(tmp_path / "run")
    run(ft(data, no_evaluations))
    pattern = r"holds a finished run without checkpoints, so it cannot continue with changed trainer\.max_steps"
    fails(ConfigError, pattern + r"; add trainer\.resume=never", ft(data, no_evaluations, "trainer.max_steps=5"))
    assert snapshot(tmp_path / "run") == before


def test_a_run_that_fails_before_training_leaves_nothing_that_blocks_its_fix(ft, tmp_path):
    """A 2-row file with batch 32 fails, as it should; the same command with trainer.per_device_batch_size=1 was
    then refused ("32 there, 1 now") because config.yaml was already written; errors left empty folders."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"], rows=2)
    validation = write_csv(tmp_path / "dev.csv", ["0", "1"], rows=2)
    overrides = ft(data, f"data.validation_file={validation}", f"output_dir={tmp_path / 'runs' / 'a'}")
    fails(TrainingError, r"smaller than one batch", [*overrides, "trainer.per_device_batch_size=32"])
    assert not (tmp_path / "runs").exists()
    run([*overrides, "trainer.per_device_batch_size=1"])
    assert (tmp_path / "runs" / "a" / "metrics.json").is_file()


def test_config_yaml_records_the_architecture_trained(ft, tmp_path, tiny_checkpoint):
    """For checkpoint runs config.yaml (and --cfg job) recorded the preset sizes (hidden 128, 2 layers) that the
    checkpoint overrides."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    run(ft(data))
    recorded = (tmp_path / "run" / "config.yaml").read_text()
    assert (
        "hidden_size: 32" in recorded
        and "intermediate_size: 64" in recorded
        and "max_position_embeddings: 128" in recorded
    )
    composed = compose_config(ft(data))
    assert composed.model.hidden_size is None  # what --cfg job prints: the checkpoint decides


# ------------------------------------------------------------------------------- one line, always


@pytest.mark.parametrize(
    ("content", "name", "pattern"),
    [
        (b"", "empty.csv", r"data\.train_file: .*empty\.csv is empty \(not even a header line\)"),
        (
            b"text\tlabel\ngood\t1\nbad\t0\n",
            "tabs.csv",
            r"data\.train_file: .*tabs\.csv: its header line is separated by tabs, not "
            r"commas; name it \.tsv",
        ),  # fmt: skip
        (
            b"text,label\ngood,1\nbad \xe9 film,0\n",
            "latin1.csv",
            r"data\.train_file: .*latin1\.csv: line 3, byte offset 22 is not UTF-8 "
            r".*data\.encoding_errors=replace",
        ),  # fmt: skip
        (
            b"text,label\n1,0\n2,1\n3,0\n",
            "numbers.csv",
            r".*numbers\.csv: column 'text' \(data\.text_column\) holds "
            r"int64 values, not text",
        ),  # fmt: skip
        (b"good,1\nbad,0\nfine,1\n", "headerless.csv", r"no column 'text' .*the first line is read as the header"),
    ],
    ids=["empty", "tabs-in-csv", "latin1", "numbers-as-text", "headerless"],
)
def test_bad_files_get_one_line_naming_file_and_line(ft, tmp_path, content, name, pattern):
    """An empty CSV, a tab-separated file named .csv and invalid UTF-8 all said "An error occurred while
    generating the dataset"; a text column of numbers ended in a 51-line transformers traceback."""
    (tmp_path / name).write_bytes(content)
    fails(DataError, pattern, ft(tmp_path / name))
    assert not (tmp_path / "run").exists()


def test_invalid_utf8_can_be_decoded_with_replacement(ft, tmp_path):
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    data.write_bytes(data.read_bytes() + b"bad \xe9 film,0\n")
    scores = run(ft(data, "data.encoding_errors=replace"))
    assert scores["validation"]["examples"] == 5


def test_paths_are_named_as_typed(ft, tmp_path):
    """A directory was said not to exist; a path was reported through its resolved symlink."""
    (tmp_path / "folder").mkdir()
    fails(DataError, r"data\.train_file: '.*folder' is a folder; name a file in it", ft(tmp_path / "folder"))
    real = tmp_path / "real.csv"
    real.write_bytes(b"")
    (tmp_path / "link.csv").symlink_to(real)
    error = fails(DataError, r"link\.csv is empty", ft(tmp_path / "link.csv"))
    assert "real.csv" not in str(error)


def test_a_symlinked_corpus_is_named_as_typed(tiny_run, tmp_path):
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes(TINY_CORPUS.read_bytes() + "Caf\xe9 au lait.\n".encode("latin-1"))
    (tmp_path / "link.txt").symlink_to(corpus)
    error = fails(
        DataError, r"link\.txt: line \d+, byte offset \d+ is not UTF-8", tiny_run(f"data.paths=[{tmp_path}/link.txt]")
    )
    assert "latin1.txt" not in str(error)


def test_model_folders_are_named_for_what_is_wrong(ft, tmp_path):
    """A missing local model folder was blamed on Hub id format; a folder without a model gave a tokenizer
    error."""
    data = write_csv(tmp_path / "train.csv", ["0", "1"])
    fails(
        ModelError,
        r"model\.name_or_path='\./nowhere/model': no such folder",
        ft(data, "model.name_or_path=./nowhere/model"),
    )
    (tmp_path / "empty_model").mkdir()
    fails(ModelError, r"model\.name_or_path=.*empty_model': this folder has no readable config\.json",
          ft(data, f"model.name_or_path={tmp_path / 'empty_model'}"))  # fmt: skip


def test_decimal_labels_and_heavy_truncation_are_warnings(ft, tmp_path, caplog):
    """Labels written 0.0/1.0 switched to regression without a log line; truncating most examples was INFO."""
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"{' '.join(WORDS[i % 10 :] + WORDS * 3)},{i % 2}.0\n" for i in range(40)))
    with caplog.at_level(logging.WARNING):
        run(ft(data, "data.max_seq_length=16"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("decimal numbers (2 distinct): a regression task; set data.label_kind=classification" in w
               for w in warnings)  # fmt: skip
    assert any("train: 100% of the examples (36 of 36) were longer than data.max_seq_length=16" in w
               for w in warnings)  # fmt: skip


# ------------------------------------------------------------------------------- the command line


def cli(args: list[str], cwd: Path, cache_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BERTKIT_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_every_bad_input_exits_2_with_one_line(tmp_path, cache_dir):
    """Hydra's errors exited 1 and bertkit's 2; internal *_schema options were listed and `model=model_schema`
    trained; the README's `accelerate launch` printed accelerate's 11-line traceback after bertkit's line."""
    script = str(ROOT / "bertkit" / "train.py")
    typo = cli([sys.executable, script, "trainer.learning_rat=1"], tmp_path, cache_dir)
    assert typo.returncode == 2, typo.stderr
    schema = cli([sys.executable, script, "model=model_schema"], tmp_path, cache_dir)
    assert schema.returncode == 2 and "model_schema" in schema.stderr
    listed = cli([sys.executable, script, "--help"], tmp_path, cache_dir)
    assert "bert_tiny" in listed.stdout and "_schema" not in listed.stdout
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--num_processes", "1",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", script,
              "data.paths=[/nowhere.txt]", "data.source=sentence_files", f"output_dir={tmp_path / 'run'}"]  # fmt: skip
    launched = cli(launch, tmp_path, cache_dir)
    assert launched.returncode == 1  # accelerate's status under --quiet (python -m bertkit.launch keeps 2)
    assert "Traceback" not in launched.stderr, launched.stderr
    assert "bertkit: error: data.paths: '/nowhere.txt' does not exist" in launched.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()
