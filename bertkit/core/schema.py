"""Helpers for the typed config schemas: checks that name the setting, and field marks: settings that may
change on resume, and settings that name input files, folders or checkpoints."""

from __future__ import annotations

from dataclasses import MISSING, field, fields, is_dataclass
from enum import StrEnum
from typing import Any

from bertkit.core.errors import ConfigError

RESUMABLE = "resumable"
"""Field metadata key: a run may change this setting and still resume (budgets and bookkeeping, nothing that
shapes what is trained)."""
INPUT = "input"
"""Field metadata key: the setting names a file, folder, glob or checkpoint that results depend on; the run
directory records a fingerprint of what it points to, and compares places resolved, not as spelled."""


def require(condition: bool, key: str, message: str) -> None:
    """Stop at start-up with a message naming the setting, e.g. `invalid setting data.stride: ...`."""
    if not condition:
        raise ConfigError(f"invalid setting {key}: {message}")


def resumable(default: Any = MISSING, *, default_factory: Any = MISSING) -> Any:
    """A schema field that an earlier run's settings may differ in, and still be resumed."""
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={RESUMABLE: True})
    return field(default=default, metadata={RESUMABLE: True})


def input_path(default: Any = MISSING, *, default_factory: Any = MISSING) -> Any:
    """A schema field naming input files or folders (a path, a list of them, or a Hub id)."""
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={INPUT: True})
    return field(default=default, metadata={INPUT: True})


def input_settings(schema: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted name: value} of the fields marked as inputs in a (nested) schema instance."""
    found: dict[str, Any] = {}
    for spec in fields(schema):
        value = getattr(schema, spec.name)
        if spec.metadata.get(INPUT):
            found[prefix + spec.name] = value
        elif is_dataclass(value):
            found |= input_settings(value, f"{prefix}{spec.name}.")
    return found


def resumable_keys(schema: Any, prefix: str = "") -> set[str]:
    """Dotted names of the fields marked resumable in a (nested) schema instance, e.g. "trainer.max_steps"."""
    keys: set[str] = set()
    for spec in fields(schema):
        value = getattr(schema, spec.name)
        if spec.metadata.get(RESUMABLE):
            keys.add(prefix + spec.name)
        elif is_dataclass(value):
            keys |= resumable_keys(value, f"{prefix}{spec.name}.")
    return keys


def flatten(tree: Any, separator: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level: {"trainer": {"seed": 1}} -> {"trainer.seed": 1} (a config, or scores)."""
    if not isinstance(tree, dict):
        return {prefix.removesuffix(separator): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, separator, f"{prefix}{key}{separator}"))
    return flat


def flat_defaults(schema: Any, prefix: str = "") -> dict[str, Any]:
    """Every field's schema default, flat ("trainer.group_by_length": False), enums by their names, as a
    resolved config.yaml holds them."""
    flat: dict[str, Any] = {}
    for spec in fields(schema):
        value = getattr(schema, spec.name)
        if is_dataclass(value):
            flat |= flat_defaults(value, f"{prefix}{spec.name}.")
        elif spec.default is not MISSING:
            flat[prefix + spec.name] = str(spec.default) if isinstance(spec.default, StrEnum) else spec.default
        elif spec.default_factory is not MISSING:
            flat[prefix + spec.name] = spec.default_factory()
    return flat
