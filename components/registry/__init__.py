"""The MLflow model registry: registering models, the promotion gate, finding models to use."""

import warnings

# the registered model validates requests against its explicit signature, not predict's type hints
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
