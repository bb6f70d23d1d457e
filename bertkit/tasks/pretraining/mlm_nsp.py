"""BERT's objective: masked language modelling plus next-sentence prediction, with google-research/bert's
`create_pretraining_data` semantics.

Every document is cut into instances: sentences are gathered into a chunk until it reaches the target length
(`max_seq_length - 3`, or with `short_seq_prob` a shorter random target); a random split point makes segment
A; half the time segment B is the rest of the chunk (IsNext), otherwise B is drawn from a random place in
another document and the unused sentences of the chunk are put back for the next instance. `truncate_seq_pair`
trims the longer segment from a random end until the pair fits. One deliberate departure: a one-sentence chunk
draws the NSP coin like any other chunk (see `create_instances`), which keeps NSP balanced at 50% where the
original drifts towards RandomNext.
"""

from __future__ import annotations

import random

import datasets
from transformers import BertForPreTraining, PreTrainedModel

from bertkit.tasks.pretraining.config import PretrainCorpusConfig
from bertkit.tasks.pretraining.documents import TokenizedDocuments
from bertkit.tasks.pretraining.heads import MaskedLMOnlyBertForPreTraining
from bertkit.tasks.pretraining.instances import (
    BuildSettings,
    Instance,
    InstanceBuilder,
    SegmentPairs,
    truncate_seq_pair,
)
from bertkit.tasks.pretraining.objective import PretrainingObjective

IS_NEXT, RANDOM_NEXT = 0, 1  # BertForPreTraining's next_sentence_label convention


class MaskedLMAndNextSentence(PretrainingObjective):
    pair_task = "nsp"
    needs_two_documents = "next-sentence prediction"
    pair_label = "next_sentence_label"
    label_share = ("nsp_random_next_fraction", pair_label)

    def builder(self, tokenized: datasets.Dataset, settings: BuildSettings) -> InstanceBuilder:
        return SegmentPairs(tokenized, settings, self.pair_label, create_instances)

    def model_class(self, masked_positions_only: bool, architecture: str = "bert") -> type[PreTrainedModel]:
        return MaskedLMOnlyBertForPreTraining if masked_positions_only else BertForPreTraining


def create_instances(
    bounds: list[int],
    document_index: int,
    corpus: TokenizedDocuments,
    cfg: PretrainCorpusConfig,
    rng: random.Random,
) -> list[Instance]:
    """NSP instances of one document, whose k-th sentence is tokens[bounds[k]:bounds[k + 1]]; a random next
    segment comes from `corpus.segment` of another document."""
    num_documents = len(corpus)
    max_tokens = cfg.max_seq_length - 3  # [CLS], [SEP], [SEP]
    target = max_tokens
    if rng.random() < cfg.short_seq_prob:
        target = rng.randint(2, max_tokens)

    instances = []
    last = len(bounds) - 2  # the last sentence
    first = i = 0  # the chunk is sentences first..i
    while i <= last:
        if i == last or bounds[i + 1] - bounds[first] >= target:
            sentences = i - first + 1
            random_next = None
            if sentences == 1:
                # The original forces RandomNext on a one-sentence chunk, which skews NSP (documents with a
                # short target become almost all RandomNext). Here the coin is drawn as for any chunk, and
                # on IsNext the following sentence is segment B. A lone last sentence has no next one to
                # offer, so it makes no instance (flipping the coin and dropping IsNext would skew NSP too).
                if i == last:
                    sentences = 0
                else:
                    random_next = rng.random() < cfg.random_next_prob
                    if not random_next:
                        i += 1
                        sentences = 2
            if sentences:
                a_sentences = 1 if sentences < 2 else rng.randint(1, sentences - 1)
                a_start, a_end = bounds[first], bounds[first + a_sentences]
                if random_next is None:
                    random_next = rng.random() < cfg.random_next_prob
                if random_next:
                    label = RANDOM_NEXT
                    other = rng.randrange(num_documents - 1)
                    other += other >= document_index  # any document but this one
                    need = max(1, target - (a_end - a_start))
                    b_tokens, b_start, b_end = corpus.segment(other, rng.random(), need)
                    i = first + a_sentences - 1  # the unused sentences go back for the next instance
                else:
                    label = IS_NEXT
                    b_tokens, b_start, b_end = None, a_end, bounds[i + 1]
                front_a, back_a, front_b, back_b = truncate_seq_pair(a_end - a_start, b_end - b_start, max_tokens, rng)
                a_start, a_end, b_start, b_end = a_start + front_a, a_end - back_a, b_start + front_b, b_end - back_b
                if a_end > a_start and b_end > b_start:
                    instances.append(
                        (a_start, a_end, b_tokens, b_start, b_end, label, front_a + back_a + front_b + back_b)
                    )
            first = i + 1
        i += 1
    return instances
