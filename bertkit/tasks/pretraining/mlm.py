"""RoBERTa's objective: masked language modelling alone, on FULL-SENTENCES inputs (Liu et al. 2019).

Each instance is `[CLS]`, contiguous whole sentences in corpus order up to `max_seq_length`, then `[SEP]`;
an instance may cross into the next document, with one more `[SEP]` at the boundary. There is no second
segment (all token type 0) and no second task. `short_seq_prob` and the NSP/SOP settings do not apply.
"""

from __future__ import annotations

from typing import Any

import datasets
import torch
from transformers import BertForMaskedLM, ModernBertForMaskedLM, PreTrainedModel

from bertkit.tasks.pretraining.heads import MaskedLMOnlyBertForMaskedLM
from bertkit.tasks.pretraining.instances import BuildSettings, InstanceBuilder, PackedText
from bertkit.tasks.pretraining.objective import PretrainingObjective


class MaskedLM(PretrainingObjective):
    encoder_types = frozenset({"bert", "modernbert"})

    def builder(self, tokenized: datasets.Dataset, settings: BuildSettings) -> InstanceBuilder:
        return PackedText(tokenized, settings)

    def model_class(self, masked_positions_only: bool, architecture: str = "bert") -> type[PreTrainedModel]:
        if architecture == "modernbert":
            return ModernBertForMaskedLM
        return MaskedLMOnlyBertForMaskedLM if masked_positions_only else BertForMaskedLM

    def mlm_logits(self, output: Any) -> torch.Tensor:
        return output.logits
