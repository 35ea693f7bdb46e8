"""Model zoo. Every module of this package is found and imported by the registry on first
use (each registers its models), so a new model is one new file here."""

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
