"""senet_core: a reproduction of "Squeeze-and-Excitation Networks" (Hu et al., TPAMI 2019).

Modules follow the paper: ``se`` (Section 3), ``models`` (Section 3.3), ``complexity`` (Section 4),
``weights`` (importing the released checkpoints, with the preprocessing each expects).
"""
from .se import NoSqueeze, SEBlock, SEConfig, capture_gates, se_modules
from .models import create_model, list_models, model_entry
from .complexity import Complexity, complexity
from .models.weights import pretrained_cfg, transforms_for

__version__ = "0.1.0"

__all__ = ["SEBlock", "NoSqueeze", "SEConfig", "capture_gates", "se_modules", "create_model",
           "list_models", "model_entry", "Complexity", "complexity", "pretrained_cfg", "transforms_for",
           "__version__"]
