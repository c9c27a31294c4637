"""Network pieces, model configuration and the bundled-model registry."""

from phenoseg.models.config import ModelConfig, PostprocessConfig
from phenoseg.models.instanseg import InstanSegNet
from phenoseg.models.zoo import list_models, load_model, save_model

__all__ = ["InstanSegNet", "ModelConfig", "PostprocessConfig", "list_models", "load_model", "save_model"]
