"""Pretraining heads that score the vocabulary only where a token is masked.

The vocabulary projection at every position is most of a small BERT's work, yet only ~15% of the positions
have a label. Gathering the masked hidden states first gives the same loss with the same weights; the
checkpoints are plain `BertForPreTraining` / `BertForMaskedLM` folders. With labels, the logits these
heads return cover the masked positions only, in row-major order; without labels, every position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from transformers import BertForMaskedLM, BertForPreTraining
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.bert.modeling_bert import BertForPreTrainingOutput

from bertkit.core.batch import IGNORE_INDEX


@dataclass
class PreTrainingOutput(BertForPreTrainingOutput):
    """BertForPreTraining's output with the losses apart; prediction_logits cover masked positions."""

    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    sop_loss: torch.Tensor | None = None


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the masked positions' logits. A batch with no masked token has no MLM loss; 0 * sum
    keeps the graph connected (DDP needs every parameter to get a gradient)."""
    return torch.nn.functional.cross_entropy(logits.float(), labels) if labels.numel() else logits.sum() * 0.0


class MaskedLMOnlyBertForPreTraining(BertForPreTraining):
    """BertForPreTraining (MLM + a sentence-pair task) scoring the vocabulary at masked positions only."""

    pair_loss: ClassVar[str] = "nsp_loss"
    """The output field that reports the sentence-pair loss (the head is the same for NSP and SOP)."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        next_sentence_label: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> PreTrainingOutput | BertForPreTrainingOutput:
        if labels is None:
            return super().forward(input_ids, attention_mask, token_type_ids, **kwargs)
        outputs = self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True, **kwargs
        )
        masked = labels != IGNORE_INDEX
        prediction_logits = self.cls.predictions(outputs.last_hidden_state[masked])
        seq_relationship_logits = self.cls.seq_relationship(outputs.pooler_output)
        mlm_loss = masked_lm_loss(prediction_logits, labels[masked])
        loss, pair_loss = mlm_loss, None
        if next_sentence_label is not None:
            pair_loss = torch.nn.functional.cross_entropy(seq_relationship_logits.float(), next_sentence_label.view(-1))
            loss = mlm_loss + pair_loss
        output = PreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            seq_relationship_logits=seq_relationship_logits,
            mlm_loss=mlm_loss.detach(),
        )
        if pair_loss is not None:
            output[self.pair_loss] = pair_loss.detach()
        return output


class MaskedLMOnlyBertForSentenceOrder(MaskedLMOnlyBertForPreTraining):
    """The same head trained on sentence order (ALBERT's SOP): its loss is reported as `sop_loss`."""

    pair_loss = "sop_loss"


class MaskedLMOnlyBertForMaskedLM(BertForMaskedLM):
    """BertForMaskedLM scoring the vocabulary at masked positions only."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        if labels is None:
            return super().forward(input_ids, attention_mask, token_type_ids, **kwargs)
        outputs = self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True, **kwargs
        )
        masked = labels != IGNORE_INDEX
        logits = self.cls.predictions(outputs.last_hidden_state[masked])
        return MaskedLMOutput(loss=masked_lm_loss(logits, labels[masked]), logits=logits)
