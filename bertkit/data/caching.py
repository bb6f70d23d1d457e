"""Cache fingerprints: what a preprocessed dataset depends on, hashed into a stable name."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from transformers import PreTrainedTokenizerBase


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (anything else by its str)."""
    return hashlib.sha256(json.dumps(list(parts), default=str).encode()).hexdigest()[:32]


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's complete definition (vocabulary, normalizer, templates), hashed."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
