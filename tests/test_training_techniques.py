"""Techniques from fine-tuning practice, each one setting away: layer-wise learning-rate decay, R-Drop and
adversarial training on the word embeddings (FGM, PGD). Each keeps resume exact and two processes equal to one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from accelerate import Accelerator
from safetensors.torch import load_file

from bertkit import model as model_recipe
from bertkit import train
from bertkit.core.divergence import Distributions, OutputKind, soft_target_loss, symmetric_divergence
from bertkit.core.errors import ConfigError
from bertkit.core.layers import layer_index
from bertkit.settings import TrainerConfig
from bertkit.training import optim
from bertkit.training.loss_step import LossStep
from bertkit.training.regularisers import unit, warn_without_dropout, within

from .conftest import GLUE_FIXTURES, compose_config, logged_losses
from .encoders import ENCODERS
from .test_distributed import ONE, TWO, succeeds
from .test_encoders import task_overrides

BASE = 1e-3


def tiny_classifier(kind: str) -> torch.nn.Module:
    ids = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    if kind == "modernbert":
        ids |= {"cls_token_id": 1, "sep_token_id": 2}
    config = transformers.AutoConfig.for_model(kind, vocab_size=100, num_labels=3, **ENCODERS[kind][2], **ids)
    return transformers.AutoModelForSequenceClassification.from_config(config)


def rates(model: torch.nn.Module, decay: float) -> tuple[dict[str, float], dict[str, float]]:
    """Each parameter's learning rate and weight decay in the optimizer bertkit builds."""
    groups = optim.parameter_groups(model, TrainerConfig(learning_rate=BASE, layer_lr_decay=decay))
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    lr, weight_decay = {}, {}
    for group in groups:
        for parameter in group["params"]:
            assert names[id(parameter)] not in lr, "a parameter in two groups"
            lr[names[id(parameter)]], weight_decay[names[id(parameter)]] = group["lr"], group["weight_decay"]
    assert set(lr) == set(names.values())
    return lr, weight_decay


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_layer_decay_gives_each_layer_of_every_encoder_its_rate(kind):
    model = tiny_classifier(kind)
    lr, weight_decay = rates(model, 0.5)
    layers = model.config.num_hidden_layers
    word_embeddings = next(n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight)
    head = [name for name in lr if layer_index(name) is None]
    assert head and all(lr[name] == BASE for name in head)
    if kind == "albert":  # one layer shared across the depth: only the embeddings are below it
        assert lr[word_embeddings] == BASE * 0.5
        assert {lr[name] for name in lr if layer_index(name) != -1} == {BASE}
    else:
        assert lr[word_embeddings] == BASE * 0.5**layers
        by_layer = {layer_index(name): lr[name] for name in lr if layer_index(name) not in (None, -1)}
        assert by_layer == {index: BASE * 0.5 ** (layers - 1 - index) for index in range(layers)}
    for name, parameter in model.named_parameters():
        assert (weight_decay[name] == 0.0) == (parameter.ndim < 2 or "LayerNorm" in name), name


def test_without_decay_there_are_two_groups_as_before():
    groups = optim.parameter_groups(tiny_classifier("bert"), TrainerConfig(learning_rate=BASE))
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(BASE, 0.01), (BASE, 0.0)]


def test_the_schedule_scales_every_group_alike():
    cfg = TrainerConfig(learning_rate=BASE, layer_lr_decay=0.8, warmup_steps=2)
    optimizer = optim.build_optimizer(tiny_classifier("roberta"), cfg, torch.device("cpu"))
    scheduler = optim.build_scheduler(optimizer, cfg, total_steps=10)
    starting = [group["initial_lr"] for group in optimizer.param_groups]
    assert len(set(starting)) > 2
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        now = [group["lr"] for group in optimizer.param_groups]
        assert now[0] > 0 and now == pytest.approx([rate * now[0] / starting[0] for rate in starting])


TECHNIQUES = {
    "layer_lr_decay": ["trainer.layer_lr_decay=0.7"],
    "rdrop": ["trainer.rdrop_alpha=1.0"],
    "fgm": ["trainer.adversarial=fgm"],
    "pgd": ["trainer.adversarial=pgd", "trainer.adversarial_steps=2"],
    "rdrop_fgm_decay": ["trainer.rdrop_alpha=0.5", "trainer.adversarial=fgm", "trainer.layer_lr_decay=0.8"],
    "distill": ["distill=soft_targets", "distill.teacher={teacher}", "distill.student_layers=[1]"],
    # the masked LM is the model fine-tuned (its pretraining head is kept in the checkpoint)
    "augment": ["data.augment.method=mlm", "data.augment.copies=1", "data.augment.fraction=0.3"],
}


@pytest.fixture(scope="module")
def teacher(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint with a 2-label head saved (random, but saved, as a fine-tuned model's is): enough of a
    teacher for the mechanics of the loop."""
    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    transformers.AutoModelForSequenceClassification.from_pretrained(tiny_checkpoint, num_labels=2).save_pretrained(
        folder
    )
    transformers.AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(folder)
    return folder


def settings_of(technique: str, teacher: Path) -> list[str]:
    return [setting.format(teacher=teacher) for setting in TECHNIQUES[technique]]


def fine_tune(run_dir, cache_dir, checkpoint, *extra: str) -> None:
    train.run(compose_config([
        "+experiment=glue_rte", f"model.name_or_path={checkpoint}", f"data.glue_dir={GLUE_FIXTURES}",
        "trainer.per_device_batch_size=4", "trainer.lr_scheduler=constant", "trainer.warmup_steps=2",
        "trainer.eval_every_epoch=false", "trainer.progress_bar=false", "trainer.log_every=1",
        f"output_dir={run_dir}", f"cache_dir={cache_dir}", *extra,
    ]))  # fmt: skip


@pytest.mark.parametrize("technique", list(TECHNIQUES))
def test_resuming_half_way_ends_with_the_same_weights(technique, tmp_path, cache_dir, tiny_checkpoint, teacher):
    # A constant rate after warmup: the schedule of 3 steps is the first half of the schedule of 6.
    settings = settings_of(technique, teacher)
    fine_tune(tmp_path / "whole", cache_dir, tiny_checkpoint, *settings, "trainer.max_steps=6")
    fine_tune(tmp_path / "halves", cache_dir, tiny_checkpoint, *settings, "trainer.max_steps=3",
              "trainer.save_every=3")  # fmt: skip
    fine_tune(tmp_path / "halves", cache_dir, tiny_checkpoint, *settings, "trainer.max_steps=6")
    whole, halves = (load_file(tmp_path / run / "model" / "model.safetensors") for run in ("whole", "halves"))
    assert whole.keys() == halves.keys() and all(torch.equal(whole[k], halves[k]) for k in whole)
    plain = tmp_path / "plain"
    fine_tune(plain, cache_dir, tiny_checkpoint, "trainer.max_steps=6")
    assert any(not torch.equal(whole[k], v) for k, v in load_file(plain / "model" / "model.safetensors").items())


@pytest.mark.slow
@pytest.mark.parametrize("technique", list(TECHNIQUES))
def test_two_processes_follow_the_one_process_loss_curve(technique, tmp_path, cache_dir, tiny_checkpoint, teacher):
    """Global batch 8 as 1 x 8 and as 2 x 4, without dropout: the same updates up to float order."""
    shared = ["+experiment=glue_rte", f"model.name_or_path={tiny_checkpoint}", f"data.glue_dir={GLUE_FIXTURES}",
              "trainer.max_steps=4", "trainer.log_every=1", "trainer.eval_every_epoch=false",
              "trainer.progress_bar=false", "model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0",
              "trainer.learning_rate=1e-3", *settings_of(technique, teacher)]  # fmt: skip
    succeeds(ONE, [*shared, "trainer.per_device_batch_size=8", f"output_dir={tmp_path / 'one'}"], cache_dir)
    succeeds(TWO, [*shared, "trainer.per_device_batch_size=4", f"output_dir={tmp_path / 'two'}"], cache_dir)

    one, two = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert len(one) == len(two) == 4
    assert one == pytest.approx(two, rel=0.02)


# ------------------------------------------------------------------------------------------------- R-Drop


def symmetric_kl(first_log: torch.Tensor, second_log: torch.Tensor) -> torch.Tensor:
    """½(KL(P‖Q) + KL(Q‖P)) per row, from log-probabilities, the way torch's kl_div computes KL."""
    forward = F.kl_div(second_log, first_log, log_target=True, reduction="none").sum(-1)
    backward = F.kl_div(first_log, second_log, log_target=True, reduction="none").sum(-1)
    return 0.5 * (forward + backward)


def test_divergences_are_symmetric_kl_and_zero_between_equal_outputs():
    first, second = torch.randn(5, 7, 3), torch.randn(5, 7, 3)
    keep = torch.rand(5, 7) > 0.3
    tags = Distributions(OutputKind.categorical, first, keep)
    expected = symmetric_kl(first.log_softmax(-1), second.log_softmax(-1))[keep].mean()
    assert symmetric_divergence(tags, tags.like(second)) == pytest.approx(expected.item(), rel=1e-5)
    assert symmetric_divergence(tags.like(second), tags) == pytest.approx(expected.item(), rel=1e-5)
    assert symmetric_divergence(tags, tags) == 0

    # Each multi-label output a Bernoulli: the KL over its two outcomes.
    labels = Distributions(OutputKind.bernoulli, first)
    as_pairs = [torch.stack([F.logsigmoid(-x), F.logsigmoid(x)], dim=-1) for x in (first, second)]
    assert symmetric_divergence(labels, labels.like(second)) == pytest.approx(
        symmetric_kl(*as_pairs).mean().item(), rel=1e-5
    )
    scores = Distributions(OutputKind.scalar, first[:, 0, :1])
    assert symmetric_divergence(scores, scores.like(second[:, 0, :1])) == pytest.approx(
        F.mse_loss(first[:, 0, :1], second[:, 0, :1]).item()
    )


def test_soft_target_loss_is_t_squared_kl_from_the_softened_teacher():
    student, teacher = torch.randn(6, 4), torch.randn(6, 4) * 3
    expected = 4.0 * F.kl_div((student / 2).log_softmax(-1), (teacher / 2).log_softmax(-1), log_target=True,
                              reduction="batchmean")  # fmt: skip
    classes = Distributions(OutputKind.categorical, student)
    assert soft_target_loss(classes, teacher, 2.0) == pytest.approx(expected.item(), rel=1e-5)
    assert soft_target_loss(classes, student, 2.0) == pytest.approx(0.0, abs=1e-6)
    labels = Distributions(OutputKind.bernoulli, student)
    as_pairs = [torch.stack([F.logsigmoid(-x / 2), F.logsigmoid(x / 2)], dim=-1) for x in (student, teacher)]
    bernoulli_kl = F.kl_div(as_pairs[0], as_pairs[1], log_target=True, reduction="none").sum(-1).mean()
    assert soft_target_loss(labels, teacher, 2.0) == pytest.approx(4.0 * bernoulli_kl.item(), rel=1e-5)
    scores = Distributions(OutputKind.scalar, student[:, :1])
    assert soft_target_loss(scores, teacher[:, :1], 2.0) == pytest.approx(
        F.mse_loss(student[:, :1], teacher[:, :1]).item()
    )


def classifier_with_dropout(problem_type: str, num_labels: int) -> torch.nn.Module:
    config = transformers.AutoConfig.for_model(
        "bert", vocab_size=100, num_labels=num_labels, problem_type=problem_type, **ENCODERS["bert"][2]
    )
    return transformers.AutoModelForSequenceClassification.from_config(config).train()


class Outputs:
    """The classification task's reading of its outputs, without building its data."""

    def __init__(self, problem_type: str) -> None:
        multi_label = problem_type == "multi_label_classification"
        self.kind = OutputKind.bernoulli if multi_label else OutputKind.categorical

    def output_distributions(self, output, batch):
        return Distributions(self.kind, output["logits"])


@pytest.mark.parametrize(
    ("problem_type", "labels"),
    [("single_label_classification", torch.tensor([0, 2, 1, 0])),
     ("multi_label_classification", torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]]))],
)  # fmt: skip
def test_rdrop_adds_alpha_times_the_divergence_of_two_dropout_draws_to_their_mean_loss(problem_type, labels):
    model = classifier_with_dropout(problem_type, 3)
    batch = {"input_ids": torch.randint(5, 100, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long),
             "labels": labels}  # fmt: skip
    step = LossStep(TrainerConfig(rdrop_alpha=0.7), Outputs(problem_type), Accelerator(cpu=True), model)
    torch.manual_seed(3)
    loss = step.loss(model, batch).loss
    torch.manual_seed(3)  # the same dropout draws, the two passes by hand
    logits = model(
        input_ids=batch["input_ids"].repeat(2, 1), attention_mask=batch["attention_mask"].repeat(2, 1)
    ).logits
    first, second = logits[:4], logits[4:]
    assert not torch.equal(first, second)  # dropout differs between the two copies
    if problem_type == "multi_label_classification":
        task_loss = 0.5 * sum(F.binary_cross_entropy_with_logits(half, labels) for half in (first, second))
        pairs = [torch.stack([F.logsigmoid(-x), F.logsigmoid(x)], dim=-1) for x in (first, second)]
        consistency = symmetric_kl(*pairs).mean()
    else:
        task_loss = 0.5 * sum(F.cross_entropy(half, labels) for half in (first, second))
        consistency = symmetric_kl(first.log_softmax(-1), second.log_softmax(-1)).mean()
    assert loss.item() == pytest.approx((task_loss + 0.7 * consistency).item(), rel=1e-5)


# ----------------------------------------------------------------------------------- adversarial training


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def expected_fgm_gradients(model, batch, epsilon: float) -> dict[str, torch.Tensor]:
    """FGM by hand through inputs_embeds: the clean gradient plus the gradient at the embeddings moved by epsilon
    along each example's normalised gradient."""

    def embeddings():
        return model.get_input_embeddings()(batch["input_ids"])

    inputs = {k: v for k, v in batch.items() if k != "input_ids"}
    start = embeddings().detach().requires_grad_()
    (direction,) = torch.autograd.grad(model(inputs_embeds=start, **inputs).loss, start)
    norms = direction.flatten(1).norm(dim=1).view(-1, 1, 1)
    model(inputs_embeds=embeddings(), **inputs).loss.backward()
    model(inputs_embeds=embeddings() + epsilon * direction / norms, **inputs).loss.backward()
    return gradients(model)


def test_fgm_adds_the_gradient_at_the_perturbed_embeddings_and_touches_no_weight():
    config = transformers.AutoConfig.for_model("bert", vocab_size=100, num_labels=2, hidden_dropout_prob=0.0,
                                               attention_probs_dropout_prob=0.0, **ENCODERS["bert"][2])  # fmt: skip
    model = transformers.AutoModelForSequenceClassification.from_config(config).train()
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, 5:] = 0
    batch = {"input_ids": torch.randint(5, 100, (3, 8)), "attention_mask": mask, "labels": torch.tensor([0, 1, 1])}
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    step = LossStep(TrainerConfig(adversarial="fgm", adversarial_epsilon=0.5), None, Accelerator(cpu=True), model)
    step(model, batch)
    got = gradients(model)
    assert all(torch.equal(weights[name], value) for name, value in model.state_dict().items())
    assert step.perturbation is not None and step.perturbation.delta is None
    expected = expected_fgm_gradients(model, batch, 0.5)
    assert got.keys() == expected.keys()
    for name in got:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)
    # One PGD step the size of the bound is FGM.
    pgd = TrainerConfig(adversarial="pgd", adversarial_epsilon=0.5, adversarial_steps=1, adversarial_step_size=0.5)
    LossStep(pgd, None, Accelerator(cpu=True), model)(model, batch)
    assert all(torch.allclose(g, expected[n], rtol=1e-4, atol=1e-6) for n, g in gradients(model).items())


def test_pgd_perturbations_stay_within_epsilon():
    delta = torch.randn(4, 6, 5) * torch.tensor([0.1, 1.0, 10.0, 100.0]).view(-1, 1, 1)
    bounded = within(delta, 2.0)
    norms = bounded.flatten(1).norm(dim=1)
    assert torch.all(norms <= 2.0 + 1e-5)
    assert torch.equal(bounded[0], delta[0])  # already inside: unchanged
    assert torch.allclose(bounded[3] / norms[3], delta[3] / delta[3].flatten().norm())  # same direction


@pytest.mark.parametrize(
    ("kind", "dropout", "warned"),
    [("bert", {}, False), ("bert", {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}, True),
     ("distilbert", {"dropout": 0.0}, False), ("distilbert", {"dropout": 0.0, "attention_dropout": 0.0}, True),
     ("modernbert", {}, True), ("modernbert", {"mlp_dropout": 0.1}, False)],
)  # fmt: skip
def test_rdrop_warns_when_the_encoder_has_no_dropout_to_draw_twice(kind, dropout, warned, caplog):
    config = transformers.AutoConfig.for_model(kind, **dropout)
    with caplog.at_level("WARNING"):
        warn_without_dropout(TrainerConfig(rdrop_alpha=1.0), model_recipe.has_dropout(config))
        warn_without_dropout(TrainerConfig(rdrop_alpha=0.0), model_recipe.has_dropout(config))
    assert ("R-Drop only doubles the cost" in caplog.text) == warned
    assert len(caplog.records) == int(warned)


@pytest.mark.parametrize("technique", ["rdrop", "pgd"])
@pytest.mark.parametrize("task", ["classification", "ner", "mc"])
def test_each_technique_trains_each_task_kind_that_supports_it(
    technique, task, tmp_path, cache_dir, tiny_checkpoint, teacher
):
    run_dir = tmp_path / "run"
    train.run(compose_config([
        *task_overrides(task, tmp_path), f"model.name_or_path={tiny_checkpoint}", "trainer.max_steps=2",
        "trainer.per_device_batch_size=4", "trainer.log_every=1", "trainer.progress_bar=false",
        f"output_dir={run_dir}", f"cache_dir={cache_dir}", *settings_of(technique, teacher),
    ]))  # fmt: skip
    losses = [json.loads(line).get("loss") for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert len([loss for loss in losses if loss is not None]) == 2


@pytest.mark.parametrize("task", ["pretraining", "qa"])
def test_rdrop_is_refused_before_any_work_where_outputs_are_not_distributions(task, tmp_path, cache_dir, tiny_run,
                                                                              tiny_checkpoint):  # fmt: skip
    if task == "pretraining":
        overrides = tiny_run("trainer.rdrop_alpha=0.5")
    else:
        overrides = [*task_overrides("qa", tmp_path), f"model.name_or_path={tiny_checkpoint}",
                     "trainer.rdrop_alpha=0.5", f"output_dir={tmp_path / 'run'}", f"cache_dir={cache_dir}"]  # fmt: skip
    with pytest.raises(ConfigError, match=r"trainer\.rdrop_alpha=0\.5: R-Drop needs"):
        train.run(compose_config(overrides))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_multiple_choice_question_is_perturbed_as_one_example_over_its_choices():
    questions, choices = 3, 4
    gradient = torch.randn(questions * choices, 5, 8)
    scaled = unit(gradient, rows_per_example=choices)
    per_question = scaled.reshape(questions, -1).norm(dim=1)
    assert per_question == pytest.approx(torch.ones(questions), rel=1e-5)
    assert not scaled.reshape(questions * choices, -1).norm(dim=1) == pytest.approx(torch.ones(12), rel=1e-3)
    projected = within(3.0 * scaled, 1.0, rows_per_example=choices)
    assert projected.reshape(questions, -1).norm(dim=1) == pytest.approx(torch.ones(questions), rel=1e-5)
    assert torch.equal(unit(gradient), unit(gradient, rows_per_example=1))
