"""Model recipe: a BERT for the task, from scratch (preset sizes) or from a checkpoint."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    PreTrainedModel,
)
from transformers.models.bert.modeling_bert import BertForPreTrainingOutput

from bertkit.config import ModelConfig
from bertkit.data.bundle import TaskKind, TaskSpec
from bertkit.errors import ModelError, unreachable_checkpoint_hint

log = logging.getLogger(__name__)


def architecture(cfg: ModelConfig) -> BertConfig:
    """The BERT configuration: read from the checkpoint's config.json, or built from the preset sizes."""
    if cfg.name_or_path is None:
        return BertConfig(
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads,
            intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position_embeddings,
            type_vocab_size=cfg.type_vocab_size,
            hidden_dropout_prob=cfg.hidden_dropout_prob,
            attention_probs_dropout_prob=cfg.attention_probs_dropout_prob,
            initializer_range=cfg.initializer_range,
        )
    try:
        config = BertConfig.from_pretrained(cfg.name_or_path)
    except (OSError, ValueError) as error:
        where = "folder" if Path(cfg.name_or_path).exists() else "folder or Hub id"
        raise ModelError(
            f"model.name_or_path={cfg.name_or_path!r}: no BERT config.json could be read from this {where} "
            f"({str(error).strip().splitlines()[0]}){unreachable_checkpoint_hint(cfg.name_or_path)}"
        ) from None
    config.hidden_dropout_prob = cfg.hidden_dropout_prob
    config.attention_probs_dropout_prob = cfg.attention_probs_dropout_prob
    return config


def check_sequence_length(config: BertConfig, max_seq_length: int, setting: str = "data.max_seq_length") -> None:
    """Fail before any work when sequences would not fit the position embeddings."""
    if max_seq_length > config.max_position_embeddings:
        raise ModelError(
            f"{setting}={max_seq_length} is larger than the model's max_position_embeddings="
            f"{config.max_position_embeddings}; lower {setting}"
        )


def build_model(cfg: ModelConfig, task: TaskSpec) -> PreTrainedModel:
    """The model for the task, in float32 (mixed precision is applied by Accelerate, not baked in)."""
    config = architecture(cfg)
    check_sequence_length(config, task.max_seq_length)
    if cfg.name_or_path is None:
        config.vocab_size = task.vocab_size
        config.pad_token_id = task.pad_token_id
    elif task.vocab_size > config.vocab_size:
        raise ModelError(
            f"the tokenizer has {task.vocab_size} tokens but model.name_or_path={cfg.name_or_path!r} embeds "
            f"only {config.vocab_size}; use the checkpoint's own tokenizer (unset tokenizer.name_or_path)"
        )
    config._attn_implementation = str(cfg.attn_implementation)

    match task.kind:
        case TaskKind.pretraining:
            model_class = MaskedLMOnlyBertForPreTraining if cfg.masked_positions_only else BertForPreTraining
        case TaskKind.sequence_classification:
            model_class = BertForSequenceClassification
            config.num_labels = task.num_labels
            config.id2label = dict(task.id2label) or {0: "score"}
            config.label2id = {name: i for i, name in config.id2label.items()}
            config.problem_type = "regression" if task.is_regression else "single_label_classification"
        case TaskKind.token_classification:
            model_class = BertForTokenClassification
            config.num_labels = task.num_labels
            config.id2label = dict(task.id2label)
            config.label2id = {name: i for i, name in config.id2label.items()}
        case TaskKind.question_answering:
            model_class = BertForQuestionAnswering
            config.num_labels = 2  # a start and an end logit per token
    if cfg.name_or_path is None:
        return model_class(config)
    model, info = model_class.from_pretrained(
        cfg.name_or_path,
        config=config,
        dtype=torch.float32,
        output_loading_info=True,
        trust_remote_code=cfg.trust_remote_code,
        # A checkpoint fine-tuned on another task has a head of another size: it is replaced, and said so.
        ignore_mismatched_sizes=True,
    )
    fresh = set(info["missing_keys"]) | {key for key, *_ in info["mismatched_keys"]}
    # Name modules, not tensors: "classifier", "cls.predictions" (weights and biases alike).
    fresh_modules = sorted({".".join(key.rsplit(".", 1)[0].split(".")[:2]) for key in fresh})
    if fresh_modules:
        log.warning(
            "%s has no weights for %s: they start from random initialisation and are trained in this run",
            cfg.name_or_path,
            ", ".join(fresh_modules),
        )
    return model


@dataclass
class PreTrainingOutput(BertForPreTrainingOutput):
    """BertForPreTraining's output, with the two losses apart; prediction_logits cover masked positions."""

    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None


class MaskedLMOnlyBertForPreTraining(BertForPreTraining):
    """BertForPreTraining that scores the vocabulary only where a token is masked.

    The vocabulary projection at every position is most of a small BERT's work, yet only ~15% of the
    positions have a label. Gathering the masked hidden states first gives the same loss with the same
    weights; checkpoints are plain `BertForPreTraining` folders.
    """

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        next_sentence_label: torch.Tensor | None = None,
        **kwargs,
    ) -> PreTrainingOutput:
        if labels is None:
            return super().forward(input_ids, attention_mask, token_type_ids, **kwargs)
        outputs = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
            **kwargs,
        )
        masked = labels != -100
        prediction_logits = self.cls.predictions(outputs.last_hidden_state[masked])
        seq_relationship_logits = self.cls.seq_relationship(outputs.pooler_output)
        # A batch with no masked token has no MLM loss; 0 * sum keeps the graph connected (DDP needs it).
        mlm_loss = (
            torch.nn.functional.cross_entropy(prediction_logits.float(), labels[masked])
            if masked.any()
            else prediction_logits.sum() * 0.0
        )
        loss, nsp_loss = mlm_loss, None
        if next_sentence_label is not None:
            nsp_loss = torch.nn.functional.cross_entropy(seq_relationship_logits.float(), next_sentence_label.view(-1))
            loss = mlm_loss + nsp_loss
        return PreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            seq_relationship_logits=seq_relationship_logits,
            mlm_loss=mlm_loss.detach(),
            nsp_loss=None if nsp_loss is None else nsp_loss.detach(),
        )
