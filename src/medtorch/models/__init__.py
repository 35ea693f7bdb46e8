"""Model zoo. Importing this package registers every model (one module per family)."""

from medtorch.models import (  # noqa: F401  (registration)
    bag,
    cnn1d,
    deepr,
    events,
    hannun,
    mlp,
    resnet1d,
    retain,
    rnn,
    transformer,
    vision,
    visit_rnn,
)
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
