"""trainer.push_to_hub: refused before any work when the Hub cannot be reached; otherwise model/ is uploaded."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest

from bertkit import train
from bertkit.core.errors import ConfigError

from .conftest import compose_config
from .test_selection import ft  # noqa: F401  (the tiny fine-tuning run's fixture)


def test_offline_it_fails_before_training_with_one_line(ft, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    overrides = ft("trainer.max_steps=2", "trainer.push_to_hub=true", "trainer.hub_model_id=someone/tiny")
    with pytest.raises(ConfigError, match=r"trainer\.push_to_hub: someone/tiny cannot be uploaded to") as error:
        train.run(compose_config(overrides))
    assert "\n" not in str(error.value) and not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"needs trainer\.hub_model_id"):
        train.run(compose_config(ft("trainer.push_to_hub=true")))


def test_the_model_folder_with_its_card_is_uploaded_at_the_end(ft, tmp_path, monkeypatch):  # noqa: F811
    calls = []

    class FakeHub:
        def whoami(self):
            return {"name": "someone"}

        def create_repo(self, repo_id, exist_ok):
            calls.append(("create", repo_id, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    train.run(
        compose_config(ft("trainer.max_steps=2", "trainer.push_to_hub=true", "trainer.hub_model_id=someone/tiny"))
    )
    assert calls[0] == ("create", "someone/tiny", True)
    assert calls[1][:2] == ("upload", "someone/tiny") and {"README.md", "config.json", "model.safetensors"} <= set(
        calls[1][2]
    )
