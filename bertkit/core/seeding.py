"""Seeds and fingerprints derived from values, so every process and every rerun agrees on them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from transformers import PreTrainedTokenizerBase


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed derived from the parts (seed, epoch, index, ...): the same in every process and run."""
    key = "/".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & (2**63 - 1)


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (anything else by its str): names a cache entry."""
    return hashlib.sha256(json.dumps(list(parts), default=str).encode()).hexdigest()[:32]


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's complete definition (vocabulary, normalizer, templates) and the inputs it gives the model
    (token type ids or not), hashed."""
    definition = tokenizer.backend_tokenizer.to_str() + "|" + ",".join(tokenizer.model_input_names)
    return hashlib.sha256(definition.encode()).hexdigest()
