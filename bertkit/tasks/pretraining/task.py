"""The pretraining task: a corpus, held out by document, tokenized, cut into instances by the objective."""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import PreTrainedTokenizerBase

from bertkit.core.batch import Batch, Gathered, Scores
from bertkit.core.errors import DataError
from bertkit.core.task import Head, TaskData, TaskSpec
from bertkit.settings import ModelConfig
from bertkit.tasks.base import CardFacts, Prediction, Task, TrainingText, pipeline_usage
from bertkit.tasks.pretraining.config import CorpusSource, MaskingMode, Objective, PretrainCorpusConfig
from bertkit.tasks.pretraining.corpus import (
    DOCUMENT_FEATURES,
    SENTENCES,
    each_document,
    load_documents,
    sentence_chunks,
    stream_documents,
    stream_fingerprint,
)
from bertkit.tasks.pretraining.documents import (
    cache_key,
    majority_token,
    merged_stats,
    split_documents,
    summarize,
    tokenize_documents,
    tokens_key,
)
from bertkit.tasks.pretraining.fill_mask import FillMask
from bertkit.tasks.pretraining.instances import BuildSettings, build_instances
from bertkit.tasks.pretraining.masking import PretrainingCollator, VocabularyTables
from bertkit.tasks.pretraining.mlm import MaskedLM
from bertkit.tasks.pretraining.mlm_nsp import MaskedLMAndNextSentence
from bertkit.tasks.pretraining.objective import PretrainingObjective
from bertkit.tasks.pretraining.sop import MaskedLMAndSentenceOrder
from bertkit.tasks.pretraining.stream import BlockBuilder, InstanceStream, PositionCarrying, document_key

log = logging.getLogger(__name__)
OBJECTIVES: dict[Objective, PretrainingObjective] = {
    Objective.mlm_nsp: MaskedLMAndNextSentence(),
    Objective.mlm: MaskedLM(),
    Objective.sop: MaskedLMAndSentenceOrder(),
}
HELD_OUT = "heldout"


class PretrainingTask(Task[PretrainCorpusConfig]):
    """Masked language modelling, with the sentence-pair task of the objective, scored on held-out documents."""

    majority_token: int
    majority_label: int | None
    every_position: bool = False
    """The head chosen by `head` scores every position (model.masked_positions_only=false), so `gather` picks
    the masked ones out itself."""

    @property
    def objective(self) -> PretrainingObjective:
        return OBJECTIVES[self.cfg.objective]

    @property
    def encoder_types(self) -> frozenset[str]:  # type: ignore[override]
        return self.objective.encoder_types

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        return self.objective.headline_metrics

    def training_text(self, cache_dir: Path) -> TrainingText:
        if self.cfg.streaming:
            stream = stream_documents(self.cfg, cache_dir)
            return TrainingText(
                fingerprint=stream_fingerprint(self.cfg),
                documents=None,
                sentence_batches=lambda: sentence_chunks(row[SENTENCES] for row in stream),
            )
        documents = load_documents(self.cfg, cache_dir)
        return TrainingText(
            fingerprint=documents._fingerprint,
            documents=len(documents),
            sentence_batches=lambda: sentence_chunks(each_document(documents)),
        )

    def build(self, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> TaskData:
        """Corpus -> held-out split -> tokens -> instances; held-out instances are masked once, with a fixed
        seed, so every evaluation scores the same task."""
        if tokenizer.mask_token_id is None or tokenizer.sep_token_id is None or tokenizer.cls_token_id is None:
            raise DataError("the tokenizer has no [CLS]/[SEP]/[MASK] token; BERT pretraining needs all three")
        tables = VocabularyTables(tokenizer)
        train, held_out, stats = (self._streamed if self.cfg.streaming else self._cached)(tokenizer, cache_dir, tables)
        # a streamed run has no training set to count: its held-out instances stand in for it
        counted, split = (train, "train") if isinstance(train, datasets.Dataset) else (held_out, HELD_OUT)
        self.majority_token = majority_token(counted, tables)
        share = self.objective.label_share
        self.majority_label = None if share is None else int(stats[split][share[0]] > 0.5)
        collate = PretrainingCollator(
            tables,
            self.cfg.masking,
            seed=self.cfg.seed,
            pair_label=self.objective.pair_label,
            # a sentence pair's segments always (its head is BERT's); single segments where the model has types
            token_types=self.objective.pair_label is not None or "token_type_ids" in tokenizer.model_input_names,
        )
        return TaskData(
            spec=TaskSpec.of(tokenizer, self.cfg.max_seq_length),
            train=train,
            evaluation={HELD_OUT: held_out},
            collate_train=PositionCarrying(collate) if self.cfg.streaming else collate,
            collate_eval=collate,
            stats=stats,
            description=describe(self.cfg),
        )

    def _cached(
        self, tokenizer: PreTrainedTokenizerBase, cache_dir: Path, tables: VocabularyTables
    ) -> tuple[datasets.Dataset, datasets.Dataset, dict[str, Any]]:
        """Training and held-out instances of the corpus, built once and cached; with data.num_shards, shard by
        shard (data.shard: that one alone), each split and cut on its own."""
        documents, key, cfg = load_documents(self.cfg, cache_dir), cache_key(self.cfg, tokenizer), self.cfg
        shards = range(cfg.num_shards) if cfg.shard is None else [cfg.shard]
        built: dict[str, list[datasets.Dataset]] = {"train": [], HELD_OUT: []}
        stats: dict[str, list[dict[str, Any]]] = {"train": [], HELD_OUT: []}
        for shard in shards:
            part, split_cfg, suffix = documents, cfg, ""
            if cfg.num_shards > 1:  # the held-out cap is shared among the shards
                part = documents.shard(cfg.num_shards, shard, contiguous=True)
                split_cfg = replace(cfg, max_eval_documents=max(2, cfg.max_eval_documents // cfg.num_shards))
                suffix = f".{shard}of{cfg.num_shards}"
            for split, docs in zip(built, split_documents(part, split_cfg), strict=True):
                instances, counts = self._instances(f"{split}{suffix}", docs, tokenizer, tables, key)
                built[split].append(instances)
                stats[split].append(counts)
        train, held_out = (datasets.concatenate_datasets(built[split]) for split in ("train", HELD_OUT))
        return train, held_out, {split: merged_stats(parts) for split, parts in stats.items()}

    def _streamed(
        self, tokenizer: PreTrainedTokenizerBase, cache_dir: Path, tables: VocabularyTables
    ) -> tuple[InstanceStream, datasets.Dataset, dict[str, Any]]:
        """data.streaming: the stream's first max_eval_documents documents are held out (built like a cached
        split); training instances are cut from the rest as it is read."""
        stream = stream_documents(self.cfg, cache_dir)
        documents = iter(stream)
        first = list(itertools.islice(documents, self.cfg.max_eval_documents))
        if len(list(itertools.islice(documents, 2))) < 2:
            raise DataError(
                f"the stream holds {len(first)} document(s) or barely more, and data.max_eval_documents="
                f"{self.cfg.max_eval_documents} holds out its first ones: nothing is left to train on (lower it)"
            )
        held_out_documents = datasets.Dataset.from_list(first, features=DOCUMENT_FEATURES)
        key = cache_key(self.cfg, tokenizer)
        held_out, held_out_stats = self._instances(HELD_OUT, held_out_documents, tokenizer, tables, key)
        build_block = BlockBuilder(self.cfg, tokenizer, self.objective.builder, tables)
        train = InstanceStream(stream, build_block, frozenset(map(document_key, first)), self.cfg.seed)
        stats = {"train": {"streaming": True, "stream_buffer": self.cfg.stream_buffer}, HELD_OUT: held_out_stats}
        return train, held_out, stats

    def _instances(
        self,
        split: str,
        documents: datasets.Dataset,
        tokenizer: PreTrainedTokenizerBase,
        tables: VocabularyTables,
        key: str,
    ) -> tuple[datasets.Dataset, dict[str, Any]]:
        tokenized = tokenize_documents(documents, tokenizer, self.cfg, tokens_key(tokenizer))
        if len(tokenized) < 2:
            raise DataError(
                f"{split} split: {len(tokenized)} document(s) with any text after tokenization; "
                f"{self.objective.needs_two_documents} needs at least two"
            )
        held_out = split.partition(".")[0] == HELD_OUT  # "heldout", or one shard's: "heldout.0of4"
        settings = BuildSettings(
            cfg=self.cfg,
            tables=tables,
            cls_id=tokenizer.cls_token_id,
            sep_id=tokenizer.sep_token_id,
            static_masks=held_out or self.cfg.masking.mode == MaskingMode.static,
            dupe_factor=1 if held_out else self.cfg.dupe_factor,
            split=split,
        )
        instances = build_instances(self.objective.builder(tokenized, settings), key)
        stats = summarize(documents, tokenized, instances, self.objective.label_share)
        log.info(
            "%s: %s", split, ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items())
        )
        return instances, stats

    def predict_file(self, path: str, tokenizer: PreTrainedTokenizerBase, cache_dir: Path, top_k: int) -> Prediction:
        """Fill-mask: the top k tokens for each mask of each text (a .txt line, or data.text_column of a table)."""
        return FillMask(tokenizer, top_k, self.cfg.max_seq_length).prediction(path, self.cfg.text_column, cache_dir)

    def head(self, model: ModelConfig) -> Head:
        self.every_position = not model.masked_positions_only
        head_class = self.objective.model_class(model.masked_positions_only, model.architecture)
        # ModernBERT's own masked-LM head scores only the labelled positions when asked to
        sparse = {"sparse_prediction": model.masked_positions_only} if model.architecture == "modernbert" else {}
        return Head(model_class=head_class, config=sparse)

    def gather(self, batch: Batch, output: Any) -> dict[str, torch.Tensor]:
        return self.objective.gather(batch, output, self.every_position)

    def decode(self, split: str, gathered: Gathered) -> Gathered:
        return gathered  # the scores are over the gathered predictions themselves; nothing is written

    def score(self, split: str, decoded: Gathered) -> Scores:
        return self.objective.score(decoded, self.majority_token, self.majority_label)

    def card(self) -> CardFacts:
        masking = self.cfg.masking
        return CardFacts(
            pipeline_tag="fill-mask",
            usage=pipeline_usage("fill-mask", 'print(pipe("The function returns a [MASK] of strings."))'),
            settings={
                "objective": str(self.cfg.objective),
                "masking": f"{masking.mode}, {masking.mlm_probability:.0%}, "
                f"{'whole words' if masking.whole_word else 'word pieces'}",
            },
        )


def describe(cfg: PretrainCorpusConfig) -> str:
    """One line naming the corpus, for the model card."""
    match cfg.source:
        case CorpusSource.embedded:
            return f"docstrings of installed Python code ({', '.join(cfg.embedded.packages)})"
        case CorpusSource.hub:
            return f"Hub dataset {cfg.hub_name} ({cfg.hub_config or 'default'}, {cfg.hub_split})"
        case _:
            return f"{cfg.source} {', '.join(cfg.paths)}"
