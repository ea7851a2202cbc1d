"""senet_core: a reproduction of "Squeeze-and-Excitation Networks" (Hu et al., TPAMI 2019).

The tree follows the paper outward, each layer importing only from those before it:

* the paper's objects: ``se`` (Section 3), ``models`` (Section 3.3, with ``models.weights`` for the
  released checkpoints), ``complexity`` (Section 4), ``paper`` (the paper's own tables);
* ``engine``: where and how a computation runs (``runtime``), data, recipes, training, evaluation,
  detection and profiling;
* ``study``: the reduced-scale experiments, their records and statistics, the report and Section 7's
  analysis of the excitations;
* ``book``: what the chapters call (figures, diagrams, parameters, running them in batch);
* ``cli``: the ``senet`` command on top.
"""
from .se import NoSqueeze, SEBlock, SEConfig, capture_gates, se_modules
from .models import create_model, list_models, model_entry
from .complexity import Complexity, complexity
from .models.weights import pretrained_cfg, transforms_for
from .engine.runtime import package_version

__version__ = package_version()

__all__ = ["SEBlock", "NoSqueeze", "SEConfig", "capture_gates", "se_modules", "create_model",
           "list_models", "model_entry", "Complexity", "complexity", "pretrained_cfg", "transforms_for",
           "__version__"]
