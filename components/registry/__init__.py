"""The MLflow model registry: registering models, the promotion gate, finding models to use."""
