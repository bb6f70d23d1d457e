"""Schemas of the model, tokenizer and trainer groups: which settings exist, their types and checks.

Each task's data schema lives with its task (`bertkit.tasks`); `config.py` puts them together into the run's
config. Settings marked `resumable(...)` may differ between a run and its resumption (budgets and
bookkeeping); any other change makes another run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bertkit.core.schema import input_path, require, resumable


class MixedPrecision(StrEnum):
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"
    auto = "auto"  # bf16 where the device computes it natively, else no


class SchedulerKind(StrEnum):
    linear = "linear"
    cosine = "cosine"
    constant = "constant_with_warmup"
    wsd = "warmup_stable_decay"  # warmup, a constant rate, then a decay over the last decay_ratio of the steps


SCRATCH_ARCHITECTURES = ("bert", "modernbert")
"""The encoders bertkit builds from scratch (model.architecture with no checkpoint)."""


class AttnImplementation(StrEnum):
    sdpa = "sdpa"
    eager = "eager"
    flex_attention = "flex_attention"
    flash_attention_2 = "flash_attention_2"


class ResumeMode(StrEnum):
    """What a run does with the checkpoints of an earlier run in its output_dir."""

    auto = "auto"  # resume from the newest, if the earlier run had the same configuration; else refuse
    never = "never"  # start over: what output_dir holds is moved aside to <output_dir>.prev-N, never overwritten
    force = "force"  # resume although settings or inputs changed (say, a new learning rate); history.jsonl says so


class Adversarial(StrEnum):
    """Adversarial training on the word embeddings."""

    none = "none"
    fgm = "fgm"  # one step of size adversarial_epsilon along the loss gradient (Miyato et al. 2017)
    pgd = "pgd"  # adversarial_steps steps of adversarial_step_size, kept within adversarial_epsilon (Madry et al. 2018)


class NonFiniteLoss(StrEnum):
    """What to do when a step's gradients are NaN or infinite."""

    stop = "stop"  # stop with the step number; the last good checkpoint stays the newest
    skip = "skip"  # drop that batch's update, count it, and go on


@dataclass(kw_only=True, slots=True)
class TokenizerConfig:
    """Which tokenizer to use, or how to train one."""

    name_or_path: str | None = input_path(None)
    """Hub id or folder of a tokenizer. None: the model checkpoint's tokenizer, or, when the model is
    trained from scratch, a WordPiece vocabulary trained on the pretraining corpus."""
    vocab_size: int = 8192
    """Size of a trained WordPiece vocabulary (special tokens included)."""
    lowercase: bool = True
    """Lowercase and strip accents before WordPiece (uncased BERT)."""
    min_frequency: int = 2
    """A trained WordPiece keeps only pieces seen at least this often."""

    def __post_init__(self) -> None:
        require(self.vocab_size >= 128, "tokenizer.vocab_size", f"{self.vocab_size} is too small (>= 128)")
        require(self.min_frequency >= 1, "tokenizer.min_frequency", "must be >= 1")


SIZES = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
)
"""The model settings a checkpoint decides."""


@dataclass(kw_only=True, slots=True)
class ModelConfig:
    """Model recipe: a BERT from scratch (sizes below) or from a checkpoint."""

    name_or_path: str | None = input_path(None)
    """Checkpoint folder or Hub id to start from. None: initialise from scratch with the sizes below."""
    architecture: str = "bert"
    """The encoder built from scratch: bert, or modernbert (rotary positions, alternating global and local
    attention, GLU feed-forward, no token types). With a checkpoint, its own config.json decides; the run's
    record then names its model type."""
    # The sizes: null with a checkpoint (model=pretrained), whose config.json decides them; config.yaml records
    # the checkpoint's values, so that it tells what was trained.
    hidden_size: int | None = 128
    num_hidden_layers: int | None = 2
    num_attention_heads: int | None = 2
    intermediate_size: int | None = 512
    max_position_embeddings: int | None = 512
    type_vocab_size: int | None = 2
    hidden_dropout_prob: float | None = 0.1
    """Dropout after each layer's projections (BERT's name; mapped to the architecture's own, e.g. DistilBERT's
    dropout, ModernBERT's mlp_dropout). None: the checkpoint's own (model=pretrained)."""
    attention_probs_dropout_prob: float | None = 0.1
    """Dropout of the attention probabilities (mapped likewise). None: the checkpoint's own."""
    initializer_range: float | None = 0.02
    attn_implementation: AttnImplementation = AttnImplementation.sdpa
    masked_positions_only: bool = True
    """Compute MLM logits only at masked positions (same weights and loss, far less work)."""
    trust_remote_code: bool = False
    """Allow a Hub checkpoint to run its own Python code. Off: only transformers' BERT code runs."""
    keep_layers: list[int] | None = None
    """Start from only these layers of the checkpoint, in order (DistilBERT's initialisation of a student, e.g.
    [0, 2, 4] of a 6-layer model): the model has len(keep_layers) layers, every other weight is the checkpoint's.
    None: all its layers."""

    def __post_init__(self) -> None:
        if self.name_or_path is None:
            require(
                self.architecture in SCRATCH_ARCHITECTURES,
                "model.architecture",
                f"{self.architecture!r}: a model trained from scratch is one of {', '.join(SCRATCH_ARCHITECTURES)}",
            )
            for key in (*SIZES, "hidden_dropout_prob", "attention_probs_dropout_prob"):
                require(getattr(self, key) is not None, f"model.{key}", "a model trained from scratch needs it")
            assert self.hidden_size is not None and self.num_attention_heads is not None
            require(
                self.hidden_size % self.num_attention_heads == 0,
                "model.hidden_size",
                f"{self.hidden_size} is not a multiple of model.num_attention_heads={self.num_attention_heads}",
            )
        layers = self.num_hidden_layers
        require(layers is None or layers >= 1, "model.num_hidden_layers", "must be >= 1")
        if self.keep_layers is not None:
            keep = list(self.keep_layers)
            require(self.name_or_path is not None, "model.keep_layers", "keeps layers of a checkpoint: set one")
            require(bool(keep) and min(keep) >= 0, "model.keep_layers", f"{keep} must name layers 0, 1, ...")
            require(keep == sorted(set(keep)), "model.keep_layers", f"{keep} must be increasing, each layer once")


@dataclass(kw_only=True, slots=True)
class TrainerConfig:
    """The optimisation loop."""

    per_device_batch_size: int = 32
    eval_batch_size: int = resumable(64)
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    """Applied to weights only; biases and LayerNorm parameters are never decayed."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm; 0 turns it off."""
    rdrop_alpha: float = 0.0
    """R-Drop: each batch runs twice with different dropout, and this times the symmetric KL divergence between
    the two outputs is added to the loss (their mean squared difference for regression). 0: off."""
    adversarial: Adversarial = Adversarial.none
    """Adversarial training: each batch also runs with its word embeddings perturbed in the direction that
    raises the loss most, and that loss is added (fgm: one step; pgd: several)."""
    adversarial_epsilon: float = 1.0
    """Size (L2 norm over each example's word embeddings) of the perturbation (fgm), or its bound (pgd)."""
    adversarial_steps: int = 3
    """pgd: perturbation steps, each followed by a forward pass."""
    adversarial_step_size: float = 0.3
    """pgd: size of each step."""
    layer_lr_decay: float = 1.0
    """Layer-wise learning-rate decay: the head and the top layer learn at learning_rate, each layer below at
    the rate of the one above times this, the embeddings last (e.g. 0.9). 1: one rate for all."""
    lr_scheduler: SchedulerKind = SchedulerKind.linear
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    """Warmup as a fraction of all optimizer steps, used when warmup_steps is 0."""
    decay_ratio: float = 0.1
    """lr_scheduler=wsd: the final decay (1 - sqrt, to zero) as a fraction of all optimizer steps. A run cut
    short by max_minutes stops in the stable phase: give wsd runs a max_steps."""
    num_epochs: int = resumable(1)
    max_steps: int | None = resumable(None)
    """Optimizer steps to run; overrides num_epochs when set. 0: no training, only evaluation (and
    prediction) of the model as it is."""
    max_minutes: float | None = resumable(None)
    """Stop (and evaluate, save) after this much training time."""
    mixed_precision: MixedPrecision = MixedPrecision.no
    log_every: int = resumable(10)
    eval_every: int | None = resumable(None)
    """Evaluate every N optimizer steps (and always at the end)."""
    eval_every_epoch: bool = resumable(False)
    """Evaluate at the end of every epoch (and always at the end)."""
    save_every: int | None = resumable(None)
    """Write a resumable checkpoint every N optimizer steps."""
    keep_last: int = resumable(2)
    """Resumable checkpoints to keep."""
    resume: ResumeMode = resumable(ResumeMode.auto)
    """auto: resume from the newest checkpoint in output_dir if the run there had these settings and inputs
    (refuse otherwise); never: start over, moving the earlier run aside; force: resume although settings or
    inputs changed, recording the change in history.jsonl."""
    on_nonfinite_loss: NonFiniteLoss = NonFiniteLoss.stop
    metric_for_best: str | None = None
    """With evaluations during training, model/ holds the weights of the best one by this metric: "split/metric"
    (e.g. "validation/f1") or a metric of the first evaluation split. None: the task's headline metric
    (MRPC F1, STS-B Pearson, SQuAD F1, NER F1, pretraining MLM accuracy) on its first evaluation split."""
    greater_is_better: bool | None = None
    """None: from the metric's name (losses, perplexity and errors are better lower; the rest higher)."""
    early_stopping_patience: int | None = resumable(None)
    """Stop after this many evaluations in a row without an improvement of the best metric larger than
    early_stopping_threshold (needs eval_every or eval_every_epoch)."""
    early_stopping_threshold: float = resumable(0.0)
    num_workers: int = resumable(0)
    """DataLoader worker processes (0: load in the training process)."""
    group_by_length: bool = False
    """Batch training examples of similar lengths together (shuffled in groups of 50 batches, sorted within):
    less padding when lengths vary a lot, e.g. SST-2's short sentences next to long ones."""
    torch_compile: bool = False
    progress_bar: bool = resumable(True)
    push_to_hub: bool = resumable(False)
    """Upload model/ (weights, tokenizer, card) to the Hub at the end, as trainer.hub_model_id."""
    hub_model_id: str | None = resumable(None)
    """The Hub repository to upload to, e.g. your-name/bert-mrpc."""
    report_to: list[str] = resumable(default_factory=list)
    """Accelerate trackers to log to, e.g. [tensorboard] or [wandb, mlflow]: training lines, evaluations, the
    configuration and the final metrics. Local ones write below <output_dir>/tracking/."""

    def __post_init__(self) -> None:
        for key in ("per_device_batch_size", "eval_batch_size", "gradient_accumulation_steps", "log_every"):
            require(getattr(self, key) >= 1, f"trainer.{key}", "must be >= 1")
        require(self.learning_rate > 0, "trainer.learning_rate", "must be > 0")
        require(self.num_epochs >= 1, "trainer.num_epochs", "must be >= 1")
        require(self.max_steps is None or self.max_steps >= 0, "trainer.max_steps", "must be >= 0")
        require(self.warmup_steps >= 0, "trainer.warmup_steps", "must be >= 0")
        require(0 <= self.warmup_ratio < 1, "trainer.warmup_ratio", "must be in [0, 1)")
        require(0 < self.decay_ratio <= 1, "trainer.decay_ratio", "must be in (0, 1]")
        require(self.max_grad_norm >= 0, "trainer.max_grad_norm", "must be >= 0")
        require(0 < self.layer_lr_decay <= 1, "trainer.layer_lr_decay", "must be in (0, 1]")
        require(self.rdrop_alpha >= 0, "trainer.rdrop_alpha", "must be >= 0")
        require(self.adversarial_epsilon > 0, "trainer.adversarial_epsilon", "must be > 0")
        require(self.adversarial_steps >= 1, "trainer.adversarial_steps", "must be >= 1")
        require(self.adversarial_step_size > 0, "trainer.adversarial_step_size", "must be > 0")
        require(self.keep_last >= 1, "trainer.keep_last", "must be >= 1")
        require(self.eval_every is None or self.eval_every >= 1, "trainer.eval_every", "must be >= 1")
        require(self.save_every is None or self.save_every >= 1, "trainer.save_every", "must be >= 1")
        patience = self.early_stopping_patience
        require(patience is None or patience >= 1, "trainer.early_stopping_patience", "must be >= 1")
        require(
            patience is None or bool(self.eval_every or self.eval_every_epoch),
            "trainer.early_stopping_patience",
            "needs evaluations during training: set trainer.eval_every=N or trainer.eval_every_epoch=true",
        )
        require(self.early_stopping_threshold >= 0, "trainer.early_stopping_threshold", "must be >= 0")
        require(
            not self.push_to_hub or bool(self.hub_model_id),
            "trainer.push_to_hub",
            "needs trainer.hub_model_id (e.g. your-name/bert-mrpc)",
        )


@dataclass(kw_only=True, slots=True)
class DistillConfig:
    """Knowledge distillation: the model trained (the student) also learns the outputs of a teacher."""

    teacher: str | None = input_path(None)
    """A model folder or Hub id fine-tuned for this task and labels, with the student's tokenizer. None: none."""
    alpha: float = 0.5
    """Weight of the loss on the labels; 1 - alpha weighs the soft-target loss (T² x KL to the teacher)."""
    temperature: float = 2.0
    """Softens both distributions in the soft-target loss."""
    student_layers: list[int] | None = None
    """The student starts from these layers of model.name_or_path (DistilBERT's initialisation, e.g. [0, 2, 4]);
    sets model.keep_layers. Usable without a teacher: the same student trained on the labels alone."""
    hidden_weight: float = 0.0
    """Weight of the mean squared error between hidden states: the student's embeddings and each of its layers
    against the teacher's (needs the same hidden size; the teacher then runs alongside). 0: off."""
    hidden_layers: list[int] | None = None
    """For each student layer, the teacher layer (0-based) its output imitates. None: the last layer of each of
    as many equal blocks of the teacher's layers as the student has (with [0, 2, 4] of 6 layers: [1, 3, 5])."""
    cache_teacher: bool = True
    """Compute the teacher's logits over the training set once, before training, and cache them (by teacher and
    data); False: run the teacher alongside the student on every batch."""

    def __post_init__(self) -> None:
        require(0 <= self.alpha <= 1, "distill.alpha", "must be in [0, 1]")
        require(self.temperature > 0, "distill.temperature", "must be > 0")
        require(self.hidden_weight >= 0, "distill.hidden_weight", "must be >= 0")
        for key in ("student_layers", "hidden_layers"):
            layers = getattr(self, key)
            if layers is not None:
                layers = list(layers)
                require(bool(layers) and min(layers) >= 0, f"distill.{key}", f"{layers} must name layers 0, 1, ...")
        if self.student_layers is not None:
            layers = list(self.student_layers)
            require(layers == sorted(set(layers)), "distill.student_layers", f"{layers} must be increasing, each once")
        if self.teacher is None:
            require(self.hidden_weight == 0, "distill.hidden_weight", "needs a teacher: set distill.teacher")
