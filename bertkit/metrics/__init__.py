"""bertkit's scores as local `evaluate` modules, one folder each, loadable offline by path:
`evaluate.load("bertkit/metrics/glue", "mrpc")`. Each is a thin adapter over its task's pure score functions,
which are what runs call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODULES = Path(__file__).parent


def load(name: str, config_name: str | None = None) -> Any:
    """The evaluate module `name` shipped with bertkit; works without network access."""
    import evaluate  # importing evaluate costs seconds; only its users pay for it

    return evaluate.load(str(MODULES / name), config_name)
