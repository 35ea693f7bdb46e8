"""Model zoo. Importing this package registers every model (one module per family)."""

from medtorch.models import cnn1d, hannun, mlp, resnet1d, rnn, vision  # noqa: F401  (registration)
from medtorch.models.registry import (
    ModelExample,
    create_model,
    list_models,
    model_info,
    model_params,
    register_model,
)

__all__ = [
    "ModelExample",
    "create_model",
    "list_models",
    "model_info",
    "model_params",
    "register_model",
]
