"""Which task a data config belongs to. Adding a task: its module, its YAML under conf/data/, and a line here."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Any

from transformers import PretrainedConfig

from bertkit.core.errors import ModelError
from bertkit.core.schema import INPUT, RESUMABLE
from bertkit.tasks.base import Task
from bertkit.tasks.classification.custom import CustomClassification, CustomDataConfig
from bertkit.tasks.classification.glue import GlueClassification, GlueDataConfig
from bertkit.tasks.multiple_choice import MultipleChoiceDataConfig, MultipleChoiceTask
from bertkit.tasks.pretraining.config import PretrainCorpusConfig
from bertkit.tasks.pretraining.task import PretrainingTask
from bertkit.tasks.question_answering.config import SquadDataConfig
from bertkit.tasks.question_answering.task import QuestionAnsweringTask
from bertkit.tasks.token_classification import NerDataConfig, TokenClassificationTask

DataConfig = (
    PretrainCorpusConfig
    | GlueDataConfig
    | CustomDataConfig
    | SquadDataConfig
    | NerDataConfig
    | MultipleChoiceDataConfig
)
"""Every data recipe's schema: what `data` of a run may be."""

TASKS: dict[str, tuple[type, type[Task[Any]]]] = {
    # ConfigStore name of the schema (YAML files under conf/data/ name it): (schema, its task)
    "pretrain_corpus_schema": (PretrainCorpusConfig, PretrainingTask),
    "glue_schema": (GlueDataConfig, GlueClassification),
    "custom_schema": (CustomDataConfig, CustomClassification),
    "squad_schema": (SquadDataConfig, QuestionAnsweringTask),
    "ner_schema": (NerDataConfig, TokenClassificationTask),
    "multiple_choice_schema": (MultipleChoiceDataConfig, MultipleChoiceTask),
}


def task_for(cfg: DataConfig) -> Task[Any]:
    """The task of a data config (by its type)."""
    for schema, task in TASKS.values():
        if type(cfg) is schema:
            return task(cfg)
    raise TypeError(f"no task for data config {type(cfg).__name__}")


RECIPE_KEY = "bertkit"
"""Where in config.json's task_specific_params a model folder records the data recipe it was trained with."""
_NOT_RECORDED = frozenset({"max_train_samples", "max_eval_samples", "predict"})
_BY_HEAD = {
    # a checkpoint without a record (from the Hub, or older bertkit): its head's task
    "ForSequenceClassification": "custom_schema",
    "ForTokenClassification": "ner_schema",
    "ForQuestionAnswering": "squad_schema",
    "ForMultipleChoice": "multiple_choice_schema",
    "ForMaskedLM": "pretrain_corpus_schema",
    "ForPreTraining": "pretrain_corpus_schema",
}


def recipe_record(cfg: DataConfig, tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """The data recipe as a model folder records it, so `bertkit predict` reads files the way training did: the
    schema's name and its settings (those the run tuned in place of the configured), without input paths,
    sample limits and bookkeeping."""
    name = next(name for name, (schema, _) in TASKS.items() if type(cfg) is schema)
    settings = {}
    for spec in fields(cfg):
        value = getattr(cfg, spec.name)
        if spec.metadata.get(INPUT) or spec.metadata.get(RESUMABLE) or spec.name in _NOT_RECORDED:
            continue
        if not is_dataclass(value):
            settings[spec.name] = value.name if isinstance(value, Enum) else value
    return {"schema": name, "data": settings | (tuned or {})}


def recorded_recipe(config: PretrainedConfig, checkpoint: str) -> tuple[type, type[Task[Any]], dict[str, Any]]:
    """(data schema, task, recorded settings) of a checkpoint: its record, or, without one, the task of its head
    with the schema's defaults."""
    record = (getattr(config, "task_specific_params", None) or {}).get(RECIPE_KEY)
    if record and record.get("schema") in TASKS:
        return (*TASKS[record["schema"]], dict(record.get("data", {})))
    architecture = (getattr(config, "architectures", None) or [""])[0]
    name = next((name for suffix, name in _BY_HEAD.items() if architecture.endswith(suffix)), None)
    if name is None:
        raise ModelError(
            f"{checkpoint}: config.json names the model class {architecture!r}, which bertkit cannot predict with "
            f"(heads it can: {', '.join(_BY_HEAD)})"
        )
    return (*TASKS[name], {})
