"""Uploading `model/` to the Hugging Face Hub at the end of a run (`trainer.push_to_hub`).

Whether the Hub can be reached, with a token that may write, is checked before any work: a run never
trains for hours to fail at its last step.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bertkit.core.errors import ConfigError, first_line

log = logging.getLogger(__name__)


def check_reachable(repo_id: str) -> None:
    """Stop before any work when the Hub cannot be reached or the token cannot be read."""
    from huggingface_hub import HfApi

    try:
        HfApi().whoami()
    except Exception as error:  # offline mode, no network, no or a bad token: all mean "cannot upload"
        raise ConfigError(
            f"invalid setting trainer.push_to_hub: {repo_id} cannot be uploaded to, the Hub is not reachable with "
            f"a token ({first_line(error)}); log in with `hf auth login`, or set trainer.push_to_hub=false"
        ) from None


def push(model_dir: Path, repo_id: str) -> str:
    """Create the repository if needed and upload the folder (weights, tokenizer, model card)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    commit = api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, commit_message="Upload from bertkit")
    log.info("Uploaded %s to https://huggingface.co/%s", model_dir, repo_id)
    return str(getattr(commit, "commit_url", repo_id))
