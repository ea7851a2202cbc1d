"""Section 3.3: every SE architecture of the paper beside its baseline, in one registry."""
from .registry import ModelEntry, create_model, list_models, model_entry, register_model
from .features import FeatureInfo, FeatureNet

# Importing the model files registers their factories.
from . import resnet  # noqa: F401,E402
from . import vgg  # noqa: F401,E402
from . import inception  # noqa: F401,E402
from . import mobile  # noqa: F401,E402
from . import cifar  # noqa: F401,E402
from . import shake  # noqa: F401,E402

__all__ = ["ModelEntry", "create_model", "list_models", "model_entry", "register_model", "FeatureInfo",
           "FeatureNet"]
