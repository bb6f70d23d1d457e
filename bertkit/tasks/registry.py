"""Which task a data config belongs to. Adding a task: its module, its YAML under conf/data/, and a line here."""

from __future__ import annotations

from typing import Any

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
