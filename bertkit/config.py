"""The run's typed configuration: one dataclass schema per Hydra group option, converted once by `load`.

YAML files under `conf/` only set values; the schemas decide which keys exist and what type each one has
(`settings.py` for the model, tokenizer and trainer; each task's own module for its data), so a misspelled
override, a wrong type or an unknown enum value stops the run before any work, with an error that names the
key. Code below `train.py` receives these dataclasses, never a DictConfig.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import MISSING, DictConfig, OmegaConf

from bertkit.core.errors import ConfigError
from bertkit.core.schema import flat_defaults, require, resumable, resumable_keys
from bertkit.settings import DistillConfig, ModelConfig, TokenizerConfig, TrainerConfig
from bertkit.tasks.registry import TASKS, DataConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
"""conf/: the primary config (train.yaml) and its groups, composed by train.py and bertkit.prepare."""


@dataclass(kw_only=True, slots=True)
class RunConfig:
    """One run: what to train, on which data, how, and where the results go."""

    name: str = "bertkit"
    seed: int = 42
    output_dir: str = MISSING
    """Run directory; defaults to outputs/<name>/seed<seed> so that every process agrees on it."""
    cache_dir: str = resumable(MISSING)
    """Preprocessed corpora and trained tokenizers, shared by runs (BERTKIT_CACHE overrides)."""
    optimized_metric: str | None = None
    """What a hyperparameter search (hparams_search=optuna) optimizes, as split/metric of metrics.json (e.g.
    validation/accuracy); None: the run's headline metric."""
    if TYPE_CHECKING:
        data: DataConfig = MISSING
    else:
        data: Any = MISSING  # OmegaConf takes no union of schemas: any data schema, checked by `load`
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        layers = self.distill.student_layers
        if layers is not None:
            kept = self.model.keep_layers
            require(kept is None or list(kept) == list(layers), "model.keep_layers",
                    f"{kept} differs from distill.student_layers={layers}; set one of them")  # fmt: skip
            self.model = replace(self.model, keep_layers=list(layers))
        self._fill_augment_defaults()
        if getattr(self.data, "streaming", False):
            self._check_streaming()
        require(
            self.optimized_metric is None or "/" in self.optimized_metric,
            "optimized_metric",
            f"{self.optimized_metric!r} is not split/metric (e.g. validation/accuracy)",
        )
        positions = self.model.max_position_embeddings
        if isinstance(self.data, DataConfig) and self.model.name_or_path is None and positions is not None:
            require(
                self.data.max_seq_length <= positions,
                "data.max_seq_length",
                f"{self.data.max_seq_length} is larger than model.max_position_embeddings="
                f"{self.model.max_position_embeddings}",
            )

    def _check_streaming(self) -> None:
        """data.streaming: a corpus of unknown length, read in order by one loader per process."""
        trainer = self.trainer
        checks = [
            (trainer.max_steps is not None, "trainer.max_steps", "a stream has no known length: set the steps"),
            (trainer.num_workers <= 1, "trainer.num_workers", "a stream is built in order, in one worker: use 0 or 1"),
            (not trainer.group_by_length, "trainer.group_by_length", "a stream cannot be sorted by length"),
            (not trainer.eval_every_epoch, "trainer.eval_every_epoch", "each process's shard has epochs of its own"),
        ]
        for holds, key, reason in checks:
            require(holds, key, f"data.streaming=true: {reason}")

    def _fill_augment_defaults(self) -> None:
        """data.augment's masked LM and seed default to the model fine-tuned and the run's seed."""
        settings = getattr(self.data, "augment", None)
        if settings is None or settings.method == "none":
            return
        if settings.model is None:
            require(self.model.name_or_path is not None, "data.augment.model",
                    "no masked LM to predict words with: set it (model.name_or_path is not set either)")  # fmt: skip
            settings.model = self.model.name_or_path
        if settings.seed is None:
            settings.seed = self.seed


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore (YAML files name them in their defaults lists), and the resolvers
    the YAML files use."""
    if not OmegaConf.has_resolver("suffix_unless"):
        OmegaConf.register_new_resolver("suffix_unless", suffix_unless)
    if not OmegaConf.has_resolver("swept"):
        OmegaConf.register_new_resolver("swept", swept_settings, use_cache=False)
    # Outside the groups, so that no schema is offered as an option (`model=model_schema`) or listed in --help;
    # each group's YAML files name theirs as `/NAME@_here_`.
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    for name, (schema, _) in TASKS.items():
        store.store(name=name, node=schema)
    store.store(name="model_schema", node=ModelConfig)
    store.store(name="trainer_schema", node=TrainerConfig)


def suffix_unless(value: Any, default: Any) -> str:
    """`${suffix_unless:${data.objective},mlm_nsp}`: "" for the default value, else "_<value>", so that a run
    with another value gets a name (and run directory) of its own while the default's stays as it was."""
    return "" if str(value) == str(default) else f"_{value}"


def swept_settings() -> str:
    """`${swept:}`: in a Hydra multirun, "key=value,.../" of the settings this job was given beyond those typed
    once for every job (a sweep's values, or a search's trial), the seed aside, so that its jobs never share a
    run directory; "" otherwise."""
    try:
        hydra = HydraConfig.get()
    except ValueError:  # composed outside a Hydra job (tests, the API)
        return ""
    if hydra.mode != RunMode.MULTIRUN:
        return ""
    parser = OverridesParser.create()
    typed = [arg for arg in sys.argv[1:] if ("=" in arg or arg.startswith("~")) and not arg.startswith("-")]
    common = {(o.get_key_element(), o.get_value_element_as_str()) for o in parser.parse_overrides(typed)
              if not o.is_sweep_override()}  # fmt: skip
    job = parser.parse_overrides(list(hydra.overrides.task))
    parts = [
        f"{o.get_key_element()}={o.value()}"
        for o in job
        if (o.get_key_element(), o.get_value_element_as_str()) not in common and o.get_key_element() != "seed"
    ]
    return ",".join(parts) + "/" if parts else ""


def load(cfg: DictConfig) -> RunConfig:
    """Turn Hydra's composed config into validated dataclasses, once."""
    _reject_unknown_keys(cfg, "")
    try:
        run = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as error:  # omegaconf's errors carry the full key; keep only the useful line
        key = getattr(error, "full_key", None)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"invalid setting {key}: {reason}" if key else reason) from None
    if not isinstance(run, RunConfig):
        raise ConfigError("the composed config is not a RunConfig (is conf/train.yaml missing run_schema?)")
    if not isinstance(run.data, DataConfig):
        raise ConfigError("invalid setting data: choose a data recipe, e.g. data=pretrain_corpus")
    return run


def schema_defaults(run: RunConfig) -> dict[str, Any]:
    """Every setting's default in the schema of this run's recipes, flat, as a resolved config.yaml holds them."""
    return flat_defaults(run)


def resumable_settings(run: RunConfig) -> set[str]:
    """Settings a run may change and still resume (marked `resumable` in the schemas)."""
    return resumable_keys(run)


def _reject_unknown_keys(node: DictConfig, prefix: str) -> None:
    """`+group.key=value` slips past Hydra's struct check; name such a key instead of failing obscurely."""
    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if schema is not None and is_dataclass(schema) else None
    for key in map(str, node.keys()):
        if key == "hydra":
            continue
        full = f"{prefix}{key}"
        if known is not None and key not in known:
            raise ConfigError(f"unknown setting {full} (known: {', '.join(sorted(known))})")
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            _reject_unknown_keys(child, f"{full}.")
