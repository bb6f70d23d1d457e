"""Which encoder layer a parameter belongs to, read from its name, for every architecture the Auto classes load;
and which weights a loaded checkpoint lacked."""

from __future__ import annotations

import re
from typing import Any

NUMBERED_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")
"""A parameter of an encoder's i-th layer, whatever the architecture calls its stack: BERT, RoBERTa, ELECTRA and
DeBERTa `encoder.layer.i.`, DistilBERT `transformer.layer.i.`, ModernBERT `layers.i.` (ALBERT's one shared layer
has no number)."""


def layer_index(name: str) -> int | None:
    """The encoder layer a parameter belongs to; -1 for the embeddings (DeBERTa's relative-position embeddings and
    ALBERT's embedding projection included); None for the rest (pooler, head, final norms)."""
    match = NUMBERED_LAYER.search(name)
    if match:
        return int(match.group(1))
    return -1 if "embedding" in name else None


def renumbered(name: str, new_index: dict[int, int]) -> str | None:
    """The name of a parameter once the layers are renumbered (old index -> new); None if its layer is dropped.
    Names outside the numbered layers are kept."""
    match = NUMBERED_LAYER.search(name)
    if match is None:
        return name
    index = new_index.get(int(match.group(1)))
    return None if index is None else f"{name[: match.start(1)]}{index}{name[match.end(1) :]}"


def missing_weights(loading_info: dict[str, Any]) -> list[str]:
    """The weights `from_pretrained(..., output_loading_info=True)` had to initialise: its missing keys, less the
    position-id buffers some checkpoints leave out (they are recomputed, never learned)."""
    return [key for key in loading_info["missing_keys"] if not key.endswith("position_ids")]
