"""Knowledge distillation: a student that keeps some of a checkpoint's layers, the soft-target and hidden-state
losses against a frozen teacher, the teacher's cached logits, and the checks that keep a teacher from
teaching the wrong thing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

from bertkit import model as model_recipe
from bertkit import train
from bertkit.core.errors import ConfigError, ModelError
from bertkit.core.task import Head, TaskSpec
from bertkit.settings import DistillConfig, ModelConfig
from bertkit.training.distillation import (
    TEACHER_LOGITS,
    CachedLogits,
    WithTeacherLogits,
    hidden_state_loss,
    imitated_layers,
)

from .conftest import ASSETS, GLUE_FIXTURES, compose_config, logged_losses
from .encoders import ENCODERS, build
from .test_encoders import task_overrides

HEAD = Head(model_class=transformers.AutoModelForSequenceClassification, config={"num_labels": 2})
NO_DROPOUT = ["model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0"]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoders_to_cut")
    return {kind: build(kind, folder / kind, ASSETS) for kind in ENCODERS}


@pytest.mark.parametrize("kind", [kind for kind in ENCODERS if kind != "albert"])
def test_a_student_keeps_the_chosen_layers_of_any_encoder(kind, checkpoints):
    cfg = ModelConfig(name_or_path=str(checkpoints[kind]), keep_layers=[1], **{k: None for k in ("hidden_size",)})
    built = model_recipe.build_model(cfg, TaskSpec(vocab_size=10, pad_token_id=0, max_seq_length=32), HEAD)
    student = built.model
    assert student.config.num_hidden_layers == 1
    whole = transformers.AutoModelForMaskedLM.from_pretrained(checkpoints[kind]).state_dict()
    prefix = student.base_model_prefix
    kept = {name: value for name, value in student.state_dict().items() if name.startswith(f"{prefix}.")}
    compared = 0
    for name, value in kept.items():
        source = name.replace("layer.0.", "layer.1.").replace("layers.0.", "layers.1.")
        if source in whole:  # the pooler is new: a masked-LM checkpoint has none
            assert torch.equal(value, whole[source]), name
            compared += "layer.0." in name or "layers.0." in name
    assert compared >= 4


def test_layers_that_cannot_be_kept_are_refused(checkpoints):
    spec = TaskSpec(vocab_size=10, pad_token_id=0, max_seq_length=32)
    with pytest.raises(ModelError, match=r"model\.keep_layers=\[0, 2\] cannot be kept of this checkpoint: it has 2"):
        model_recipe.build_model(ModelConfig(name_or_path=str(checkpoints["bert"]), keep_layers=[0, 2]), spec, HEAD)
    with pytest.raises(ModelError, match="ALBERT shares one layer"):
        model_recipe.build_model(ModelConfig(name_or_path=str(checkpoints["albert"]), keep_layers=[0]), spec, HEAD)
    with pytest.raises(ConfigError, match=r"model\.keep_layers.*increasing"):
        ModelConfig(name_or_path="x", keep_layers=[1, 0])
    with pytest.raises(ConfigError, match=r"model\.keep_layers.*set one"):
        ModelConfig(keep_layers=[0])


def rte(run_dir, cache_dir, *extra: str) -> list[str]:
    return ["+experiment=glue_rte", f"data.glue_dir={GLUE_FIXTURES}", "trainer.per_device_batch_size=4",
            "trainer.eval_every_epoch=false", "trainer.progress_bar=false", "trainer.log_every=1",
            f"output_dir={run_dir}", f"cache_dir={cache_dir}", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_checkpoint):
    """A tiny BERT fine-tuned on the RTE fixtures (its model/ folder)."""
    run_dir = tmp_path_factory.mktemp("teacher") / "run"
    cache_dir = tmp_path_factory.getbasetemp() / "bertkit-cache"  # the session's, as the cache_dir fixture's
    # A high rate and no dropout: 30 steps make it sure of its answers, so a student that is not it has to learn.
    settings = [f"model.name_or_path={tiny_checkpoint}", "trainer.max_steps=30", "trainer.learning_rate=1e-2"]
    train.run(compose_config(rte(run_dir, cache_dir, *settings, *NO_DROPOUT)))
    return run_dir / "model"


def distill(run_dir, cache_dir, teacher, *extra: str) -> list[str]:
    """Overrides of a 4-step distillation; the student starts from the teacher unless model.name_or_path says."""
    student = [] if any(item.startswith("model.name_or_path=") for item in extra) else [f"model.name_or_path={teacher}"]
    return rte(run_dir, cache_dir, "distill=soft_targets", f"distill.teacher={teacher}", *student,
               "trainer.max_steps=4", *extra)  # fmt: skip


def test_the_distilled_student_is_a_plain_smaller_model(teacher, tmp_path, cache_dir):
    run_dir = tmp_path / "student"
    train.run(compose_config(distill(run_dir, cache_dir, teacher, "distill.student_layers=[1]")))
    student = transformers.AutoModelForSequenceClassification.from_pretrained(run_dir / "model")
    assert student.config.num_hidden_layers == 1
    saved = load_file(run_dir / "model" / "model.safetensors")
    assert not any("teacher" in name for name in saved)
    teacher_size = sum(v.numel() for v in load_file(teacher / "model.safetensors").values())
    assert sum(v.numel() for v in saved.values()) < teacher_size
    config = (run_dir / "config.yaml").read_text()
    assert "keep_layers:\n  - 1" in config and f"teacher: {teacher}" in config


def test_a_student_equal_to_its_teacher_has_no_soft_target_loss(teacher, tmp_path, cache_dir, tiny_checkpoint):
    """alpha=0 and no dropout: a student that is the teacher has nothing to learn (its outputs, and its hidden
    states, are the teacher's); the checkpoint it was fine-tuned from has."""
    for extra in ([], ["distill.cache_teacher=false"], ["distill.hidden_weight=1", "distill.hidden_layers=[0,1]"]):
        run_dir = tmp_path / f"student{len(extra)}"
        train.run(compose_config(distill(run_dir, cache_dir, teacher, "distill.alpha=0", *NO_DROPOUT, *extra)))
        first, *rest = logged_losses(run_dir)  # later steps drift by float noise, which Adam's normalised steps amplify
        assert first == pytest.approx(0.0, abs=1e-6) and max(rest) < 1e-4, extra
    for extra in ([], ["distill.hidden_weight=1", "distill.hidden_layers=[0,1]"]):
        run_dir = tmp_path / f"other{len(extra)}"
        settings = ["distill.alpha=0", f"model.name_or_path={tiny_checkpoint}", *NO_DROPOUT, *extra]
        train.run(compose_config(distill(run_dir, cache_dir, teacher, *settings)))
        assert logged_losses(run_dir)[0] > 1e-3, extra


def test_cached_teacher_logits_train_as_the_teacher_alongside_does(teacher, tmp_path, cache_dir):
    settings = ["distill.student_layers=[0]", "distill.alpha=0.3", "distill.temperature=3", *NO_DROPOUT]
    train.run(compose_config(distill(tmp_path / "cached", cache_dir, teacher, *settings)))
    train.run(
        compose_config(distill(tmp_path / "alongside", cache_dir, teacher, *settings, "distill.cache_teacher=false"))
    )
    assert logged_losses(tmp_path / "cached") == pytest.approx(logged_losses(tmp_path / "alongside"), rel=1e-4)
    plain = tmp_path / "plain"  # the same student on the labels alone learns otherwise
    train.run(compose_config(distill(plain, cache_dir, teacher, *settings, "distill.alpha=1")))
    assert logged_losses(plain) != pytest.approx(logged_losses(tmp_path / "cached"), rel=1e-3)

    cached = sorted((cache_dir / "teacher_logits").glob("*.npz"))
    assert cached and all(".tmp" not in path.name for path in cached)
    before = {path: path.stat().st_mtime_ns for path in cached}
    train.run(compose_config(distill(tmp_path / "again", cache_dir, teacher, *settings)))  # the cache is read
    assert {path: path.stat().st_mtime_ns for path in sorted((cache_dir / "teacher_logits").glob("*.npz"))} == before


def test_a_teacher_of_other_labels_another_vocabulary_or_no_head_is_refused(
    teacher, tmp_path, cache_dir, checkpoints, tiny_checkpoint
):
    other = tmp_path / "other_labels"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(teacher)
    model.config.id2label = {0: "yes", 1: "no"}
    model.save_pretrained(other)
    transformers.AutoTokenizer.from_pretrained(teacher).save_pretrained(other)
    with pytest.raises(ModelError, match=r"distill\.teacher=.* predicts \['yes', 'no'\].*same labels"):
        train.run(compose_config(distill(tmp_path / "a", cache_dir, other, f"model.name_or_path={teacher}")))
    roberta = transformers.AutoModelForSequenceClassification.from_pretrained(checkpoints["roberta"], num_labels=2)
    roberta.config.id2label = dict(model.config.id2label)
    with pytest.raises(ModelError, match=r"another vocabulary than the student's tokenizer"):
        train.run(
            compose_config(distill(tmp_path / "b", cache_dir, checkpoints["roberta"], f"model.name_or_path={teacher}"))
        )
    with pytest.raises(ModelError, match=r"distill\.teacher=.* has no trained weights for classifier\.bias"):
        train.run(compose_config(distill(tmp_path / "d", cache_dir, tiny_checkpoint, f"model.name_or_path={teacher}")))
    with pytest.raises(ModelError, match=r"distill\.teacher='.*nowhere': no such folder"):
        train.run(
            compose_config(distill(tmp_path / "c", cache_dir, tmp_path / "nowhere", f"model.name_or_path={teacher}"))
        )
    assert not (tmp_path / "c").exists()


def test_distillation_is_refused_where_outputs_are_not_distributions(tiny_run, tiny_checkpoint):
    with pytest.raises(ConfigError, match=r"distill\.teacher: distillation needs outputs"):
        train.run(compose_config(tiny_run("distill=soft_targets", f"distill.teacher={tiny_checkpoint}")))


def test_cached_logits_reach_the_batch_padded_to_its_length():
    per_example = CachedLogits(np.arange(12.0).reshape(6, 2), np.arange(7), per_token=False)
    collate = WithTeacherLogits(lambda examples: {"input_ids": torch.tensor([[e["x"]] for e in examples])}, per_example)
    batch = collate([{"x": 1, "example_index": 4}, {"x": 2, "example_index": 1}])
    assert torch.equal(batch[TEACHER_LOGITS], torch.tensor([[8.0, 9.0], [2.0, 3.0]]))
    # Per token: example 0 has 2 tokens, example 1 has 3; a batch 4 long gets zeros after each one's tokens.
    per_token = CachedLogits(np.arange(10.0).reshape(5, 2), np.array([0, 2, 5]), per_token=True)
    padded = per_token.batch([1, 0], length=4)
    assert torch.equal(padded[0, :3], torch.tensor([[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]))
    assert torch.equal(padded[1, :2], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    assert not padded[0, 3:].any() and not padded[1, 2:].any()


def test_token_classification_distils_from_cached_per_token_logits(tmp_path, cache_dir, tiny_checkpoint):
    """NER: the teacher's logits are cached per real token and padded to each batch; a student that is the
    teacher has nothing to learn from them, and the cache trains as the teacher alongside does."""
    ner = [*task_overrides("ner", tmp_path), "trainer.per_device_batch_size=4", "trainer.progress_bar=false",
           "trainer.log_every=1", "trainer.eval_every_epoch=false", f"cache_dir={cache_dir}", *NO_DROPOUT]  # fmt: skip
    teacher_run = tmp_path / "ner_teacher"
    train.run(compose_config([*ner, f"model.name_or_path={tiny_checkpoint}", "trainer.max_steps=20",
                              "trainer.learning_rate=1e-2", f"output_dir={teacher_run}"]))  # fmt: skip
    teacher = teacher_run / "model"
    student = [*ner, "distill=soft_targets", f"distill.teacher={teacher}", "trainer.max_steps=4"]
    train.run(
        compose_config(
            [*student, f"model.name_or_path={teacher}", "distill.alpha=0", f"output_dir={tmp_path / 'same'}"]
        )
    )
    first, *rest = logged_losses(tmp_path / "same")
    assert first == pytest.approx(0.0, abs=1e-6) and max(rest) < 1e-4
    other = [*student, f"model.name_or_path={tiny_checkpoint}", "distill.alpha=0.5"]
    train.run(compose_config([*other, f"output_dir={tmp_path / 'cached'}"]))
    train.run(compose_config([*other, "distill.cache_teacher=false", f"output_dir={tmp_path / 'alongside'}"]))
    assert logged_losses(tmp_path / "cached") == pytest.approx(logged_losses(tmp_path / "alongside"), rel=1e-4)
    assert logged_losses(tmp_path / "cached")[0] > 1e-3


def test_a_teacher_reading_token_types_needs_a_student_that_has_them(teacher, tmp_path, cache_dir):
    """A DistilBERT student of the teacher's vocabulary: it has no type embeddings, the BERT teacher reads them."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(teacher)
    sizes = {"dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 128}
    config = transformers.AutoConfig.for_model("distilbert", vocab_size=len(tokenizer), **sizes)
    student = tmp_path / "distilbert"
    transformers.AutoModelForMaskedLM.from_config(config).save_pretrained(student)
    tokenizer.save_pretrained(student)
    with pytest.raises(ModelError, match=r"distill\.teacher=.* reads token type ids .* the student's inputs do not"):
        train.run(compose_config(distill(tmp_path / "run", cache_dir, teacher, f"model.name_or_path={student}")))


def test_alpha_one_trains_on_the_labels_without_the_teacher(teacher, tmp_path, cache_dir, caplog):
    run_dir = tmp_path / "run"
    train.run(compose_config(distill(run_dir, cache_dir, teacher, "distill.alpha=1", "distill.student_layers=[0]")))
    assert "the teacher" in caplog.text and "is not used" in caplog.text


def test_by_default_each_student_layer_imitates_the_last_teacher_layer_of_its_block():
    assert imitated_layers(DistillConfig(student_layers=[0, 2, 4]), 3, 6) == [1, 3, 5]
    assert imitated_layers(DistillConfig(), 4, 12) == [2, 5, 8, 11]
    assert imitated_layers(DistillConfig(hidden_layers=[0, 1]), 2, 6) == [0, 1]


def test_the_hidden_state_loss_of_multiple_choice_averages_each_choice_over_its_real_tokens():
    questions, choices, length, width = 2, 3, 5, 4
    student, teacher = torch.randn(2, questions * choices, length, width).unbind(0)
    mask = torch.ones(questions, choices, length, dtype=torch.long)
    mask[0, 1, 3:] = 0  # a short choice
    flat = mask.reshape(-1, length).float()
    per_position = (student - teacher).pow(2).mean(-1)
    expected = ((per_position * flat).sum(1) / flat.sum(1)).mean()
    loss = hidden_state_loss((student,), (teacher,), [(0, 0)], mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
