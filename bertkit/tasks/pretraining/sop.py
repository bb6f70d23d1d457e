"""ALBERT's objective: masked language modelling plus sentence-order prediction (Lan et al. 2020).

Documents are cut into chunks as for NSP (`mlm_nsp.py`: target length, `short_seq_prob`); a random point
splits each chunk into two consecutive segments, and with `swap_prob` they change places (label 1). Both
segments always come from the same document, so topic gives nothing away: the model must learn discourse
order. Where ALBERT's code makes a one-sentence chunk into a random-next pair (an NSP negative), here the
sentence is split at a random token, which keeps every pair consecutive text.
"""

from __future__ import annotations

import random

import datasets
from transformers import BertForPreTraining, PreTrainedModel

from bertkit.tasks.pretraining.config import PretrainCorpusConfig
from bertkit.tasks.pretraining.documents import TokenizedDocuments
from bertkit.tasks.pretraining.heads import MaskedLMOnlyBertForSentenceOrder
from bertkit.tasks.pretraining.instances import (
    BuildSettings,
    Instance,
    InstanceBuilder,
    SegmentPairs,
    truncate_seq_pair,
)
from bertkit.tasks.pretraining.objective import PretrainingObjective

IN_ORDER, SWAPPED = 0, 1  # labels of the sentence-pair head (BertForPreTraining's seq_relationship)


class MaskedLMAndSentenceOrder(PretrainingObjective):
    pair_task = "sop"
    pair_label = "sentence_order_label"
    label_share = ("sop_swapped_fraction", pair_label)

    def builder(self, tokenized: datasets.Dataset, settings: BuildSettings) -> InstanceBuilder:
        return SegmentPairs(tokenized, settings, self.pair_label, create_instances)

    def model_class(self, masked_positions_only: bool, architecture: str = "bert") -> type[PreTrainedModel]:
        return MaskedLMOnlyBertForSentenceOrder if masked_positions_only else BertForPreTraining


def create_instances(
    bounds: list[int], document_index: int, corpus: TokenizedDocuments, cfg: PretrainCorpusConfig, rng: random.Random
) -> list[Instance]:
    """SOP instances of one document, whose k-th sentence is tokens[bounds[k]:bounds[k + 1]]."""
    max_tokens = cfg.max_seq_length - 3  # [CLS], [SEP], [SEP]
    target = max_tokens
    if rng.random() < cfg.short_seq_prob:
        target = rng.randint(2, max_tokens)
    instances: list[Instance] = []
    last = len(bounds) - 2  # the last sentence
    first = i = 0  # the chunk is sentences first..i
    while i <= last:
        if i == last or bounds[i + 1] - bounds[first] >= target:
            instance = _pair(bounds[first : i + 2], max_tokens, cfg.swap_prob, rng)
            if instance is not None:
                instances.append(instance)
            first = i + 1
        i += 1
    return instances


def _pair(chunk: list[int], max_tokens: int, swap_prob: float, rng: random.Random) -> Instance | None:
    """Two consecutive segments of a chunk (sentence bounds), maybe swapped; None if it cannot be split."""
    if len(chunk) > 2:  # two sentences or more: split between sentences
        split = chunk[rng.randint(1, len(chunk) - 2)]
    elif chunk[1] - chunk[0] >= 2:  # one sentence: split inside it
        split = chunk[0] + rng.randint(1, chunk[1] - chunk[0] - 1)
    else:
        return None
    a_start, a_end, b_start, b_end = chunk[0], split, split, chunk[-1]
    front_a, back_a, front_b, back_b = truncate_seq_pair(a_end - a_start, b_end - b_start, max_tokens, rng)
    a_start, a_end, b_start, b_end = a_start + front_a, a_end - back_a, b_start + front_b, b_end - back_b
    dropped = front_a + back_a + front_b + back_b
    if rng.random() < swap_prob:
        return (b_start, b_end, None, a_start, a_end, SWAPPED, dropped)
    return (a_start, a_end, None, b_start, b_end, IN_ORDER, dropped)
