"""What `melforge generate --model` says when the model it was given does not exist."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from components.registry.lookup import ModelNotFound, resolve


class _EmptyRegistry:
    tracking_uri = "sqlite:///nowhere.db"

    def get_registered_model(self, name):
        raise MlflowException(f"Registered Model with name={name} not found")

    def search_registered_models(self):
        return []


def test_a_mistyped_model_folder_is_called_a_folder_not_a_registered_name(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFound, match=r"no model folder 'models/typo' \(a folder holding model.pt\) and "
                                            r"no registered model 'models'"):
        resolve(_EmptyRegistry(), "models/typo", default_name="melforge-mel-diffusion")
    # a <name>/<version> whose name is not a folder keeps the registry-only message
    with pytest.raises(ModelNotFound, match=r"^no registered model 'melforge-x'; registered models: none yet"):
        resolve(_EmptyRegistry(), "melforge-x/3", default_name="melforge-mel-diffusion")
