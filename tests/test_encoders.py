"""Any encoder: a tiny random checkpoint of each architecture (built here, tokenizer trained here) fine-tuned a few
steps on each task kind, then loaded back with plain transformers; token type ids only where a model has type
embeddings; dropout under each architecture's own names; padding and truncation on either side."""

from __future__ import annotations

import json
import shutil

import pytest
import transformers
from transformers import AutoConfig, AutoTokenizer

from bertkit import cli, model, train
from bertkit.settings import ModelConfig
from bertkit.tokenizer import fit_inputs

from .conftest import ASSETS, compose_config
from .encoders import ENCODERS, build
from .test_hostile_runs import write_csv
from .test_multiple_choice import swag_csv
from .test_ner import CONLL
from .test_squad import SMALL_WINDOWS, SQUAD_V1

AUTO = {"classification": "AutoModelForSequenceClassification", "ner": "AutoModelForTokenClassification",
        "qa": "AutoModelForQuestionAnswering", "mc": "AutoModelForMultipleChoice"}  # fmt: skip


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoders")
    return {kind: build(kind, folder / kind, ASSETS) for kind in ENCODERS}


def task_overrides(task: str, tmp_path) -> list[str]:
    if task == "classification":
        data = write_csv(tmp_path / "train.csv", ["neg", "pos"], rows=40)
        texts = tmp_path / "texts.csv"
        texts.write_text("".join(line.split(",")[0] + "\n" for line in data.read_text().splitlines()))
        return ["data=custom", "trainer=finetune", f"data.train_file={data}", f"data.test_file={texts}"]
    if task == "ner":
        return ["+experiment=conll2003", f"data.train_file={CONLL / 'train.txt'}",
                f"data.validation_file={CONLL / 'dev.txt'}", "data.max_seq_length=32", "data.stride=8"]  # fmt: skip
    if task == "qa":
        return ["+experiment=squad_v1", f"data.train_file={SQUAD_V1}", f"data.validation_file={SQUAD_V1}",
                *SMALL_WINDOWS]  # fmt: skip
    data = swag_csv(tmp_path / "swag.csv")
    return ["+experiment=multiple_choice", f"data.train_file={data}", f"data.validation_file={data}"]


@pytest.mark.parametrize("task", list(AUTO))
@pytest.mark.parametrize("kind", list(ENCODERS))
def test_each_encoder_fine_tunes_each_task_and_loads_back_with_transformers(
    checkpoints, kind, task, tmp_path, cache_dir
):
    overrides = [*task_overrides(task, tmp_path), "model=pretrained", f"model.name_or_path={checkpoints[kind]}",
                 "trainer.max_steps=3", "trainer.per_device_batch_size=4", "trainer.eval_batch_size=8",
                 "trainer.eval_every_epoch=false", "trainer.progress_bar=false", f"output_dir={tmp_path / 'run'}",
                 f"cache_dir={cache_dir}"]  # fmt: skip
    scores = train.run(compose_config(overrides))
    assert scores, "no evaluation"
    folder = tmp_path / "run" / "model"
    loaded = getattr(transformers, AUTO[task]).from_pretrained(folder)
    assert loaded.config.model_type == kind and type(loaded).__name__.endswith(AUTO[task].removeprefix("AutoModel"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if task == "mc":
        inputs = tokenizer(["a question"] * 2, ["one", "two"], padding=True, return_tensors="pt")
        inputs = {name: value[None] for name, value in inputs.items()}
    else:
        inputs = tokenizer("the cat sat", "on the mat", return_tensors="pt")
    if not getattr(loaded.config, "type_vocab_size", 0):  # no type embeddings, no type ids
        assert "token_type_ids" not in inputs
    loaded(**inputs)
    if task == "classification":  # and bertkit predict reads the folder as training did
        assert cli.main(["predict", str(folder), str(tmp_path / "texts.csv"), "--output", str(tmp_path / "p.tsv"),
                         "--batch-size", "8"]) == 0  # fmt: skip
        assert (tmp_path / "p.tsv").read_text() == (tmp_path / "run" / "predictions" / "test.tsv").read_text()


def test_token_type_ids_only_for_models_with_type_embeddings(checkpoints):
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["bert"])  # returns them
    fit_inputs(tokenizer, AutoConfig.from_pretrained(checkpoints["distilbert"]))
    assert "token_type_ids" not in tokenizer("a sentence", "another")
    fit_inputs(tokenizer := AutoTokenizer.from_pretrained(checkpoints["bert"]), AutoConfig.for_model("bert"))
    assert "token_type_ids" in tokenizer("a sentence", "another")


@pytest.mark.parametrize(
    ("kind", "names"),
    [("bert", ("hidden_dropout_prob", "attention_probs_dropout_prob")),
     ("distilbert", ("dropout", "attention_dropout")), ("modernbert", ("mlp_dropout", "attention_dropout"))],
)  # fmt: skip
def test_dropout_settings_take_each_architectures_names_and_null_keeps_the_checkpoints(checkpoints, kind, names):
    given = model.architecture(ModelConfig(name_or_path=str(checkpoints[kind]), hidden_dropout_prob=0.3,
                                           attention_probs_dropout_prob=0.2, **dict.fromkeys(model.SIZES)))  # fmt: skip
    assert (getattr(given, names[0]), getattr(given, names[1])) == (0.3, 0.2)
    kept = model.architecture(ModelConfig(name_or_path=str(checkpoints[kind]), hidden_dropout_prob=None,
                                          attention_probs_dropout_prob=None, **dict.fromkeys(model.SIZES)))  # fmt: skip
    own = AutoConfig.from_pretrained(checkpoints[kind])
    assert (getattr(kept, names[0]), getattr(kept, names[1])) == (getattr(own, names[0]), getattr(own, names[1]))


def test_roberta_positions_reserve_the_padding_offset(checkpoints):
    config = AutoConfig.from_pretrained(checkpoints["roberta"])  # 130 position embeddings, 128 usable
    model.check_sequence_length(config, 128)
    with pytest.raises(Exception, match=r"data.max_seq_length=129 is larger than the 128 positions"):
        model.check_sequence_length(config, 129)


def test_pretraining_stays_bert(checkpoints, tiny_run):
    from bertkit.core.errors import ModelError

    overrides = tiny_run("model=pretrained", f"model.name_or_path={checkpoints['roberta']}",
                         f"tokenizer.name_or_path={checkpoints['roberta']}")  # fmt: skip
    with pytest.raises(ModelError, match=r"is a roberta checkpoint \(RobertaForMaskedLM\); this task trains a BERT"):
        train.run(compose_config(overrides))


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_either_padding_and_truncation_side_predicts_the_same(checkpoints, task, tmp_path, cache_dir):
    overrides = [*task_overrides(task, tmp_path), "model=pretrained", f"model.name_or_path={checkpoints['roberta']}",
                 "trainer.max_steps=2", "trainer.per_device_batch_size=4", "trainer.eval_every_epoch=false",
                 "trainer.progress_bar=false", f"output_dir={tmp_path / 'run'}", f"cache_dir={cache_dir}"]  # fmt: skip
    train.run(compose_config(overrides))
    folder, left = tmp_path / "run" / "model", tmp_path / "left"
    shutil.copytree(folder, left)
    settings = json.loads((left / "tokenizer_config.json").read_text())
    settings |= {"padding_side": "left", "truncation_side": "left"}
    (left / "tokenizer_config.json").write_text(json.dumps(settings))
    source = CONLL / "dev.txt" if task == "ner" else SQUAD_V1
    outputs = []
    for where in (folder, left):
        out = tmp_path / f"{where.name}.jsonl"
        assert cli.main(["predict", str(where), str(source), "--output", str(out), "--batch-size", "4"]) == 0
        outputs.append([{k: v for k, v in json.loads(line).items() if k != "score"} for line in out.open()])
    assert outputs[0] == outputs[1]
