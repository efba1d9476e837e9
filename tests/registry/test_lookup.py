"""What `melforge generate --model` says when the model it was given does not exist."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
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


def test_a_model_name_with_a_quote_resolves_and_one_with_both_quotes_is_a_clear_error(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("e"))
    client.create_registered_model("it's")
    client.create_model_version("it's", f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert resolve(client, "it's/1", default_name="x").uri == "models:/it's/1"
    assert resolve(client, run.info.run_id, default_name="x").version == "1"
    with pytest.raises(ModelNotFound, match="no version '7'; versions: 1"):
        resolve(client, "models:/it's/7", default_name="x")
    with pytest.raises(ModelNotFound, match="no registered model"):
        resolve(client, "a'b\"c/1", default_name="x")
