"""The trunk / head split every network of the paper shares, as timm and torchvision tools expect it.

Each network ends the same way (Table 1's last row): global average pooling of the last feature
map, sometimes dropout, and a fully connected classifier. :class:`Classifier` names those parts
so that a network drops into timm-style workflows:

* ``forward_features(x)``: the trunk, the last feature map (N, C, H, W), before pooling;
* ``forward_head(x, pre_logits=False)``: pooling (and dropout) plus the classifier; with
  ``pre_logits=True`` the pooled vector the classifier reads;
* ``get_classifier()`` and ``reset_classifier(num_classes)``: the final FC layer, and a new one
  for another task (fine-tuning), initialised like the original (see :func:`init.init_classifier`);
* ``num_classes``, ``num_features`` (channels of the last feature map), ``feature_info`` (the
  stage outputs ``features_only`` can return: channels, reduction, module) and ``first_conv``.

The network classes write ``forward_features`` and ``forward_head`` out themselves; this mixin only
adds what is the same for all of them. Module names, parameters and outputs are unchanged.
"""
from __future__ import annotations

from torch import nn

from .init import init_classifier


class Classifier:
    """Mixin for ``nn.Module`` networks that end in pooling and one ``nn.Linear`` classifier.

    A subclass sets ``classifier_name`` (qualified name of that layer), ``first_conv``, and in its
    ``__init__`` ``num_classes``, ``num_features`` and ``feature_info``; ``head_hidden_size`` when
    the classifier reads something else than the pooled last feature map (VGG's 4096-unit FCs).
    """

    classifier_name: str = "fc"
    first_conv: str = "conv1"

    def get_classifier(self) -> nn.Module:
        """The final fully connected layer (an ``nn.Identity`` after ``reset_classifier(0)``)."""
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs.

        ``num_classes=0`` removes it, as in timm: ``forward`` then returns the pooled features.
        The new layer is on the old one's device and dtype. ``global_pool`` is timm's argument;
        these networks pool by global average only (``"avg"``).
        """
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        if global_pool not in (None, "avg"):
            raise ValueError(f"global_pool={global_pool!r}: these networks pool by global average only ('avg'); "
                             f"forward_features(x) gives the unpooled feature map")
        in_features = getattr(self, "head_hidden_size", self.num_features)
        if num_classes > 0:
            reference = next(self.parameters())
            head = nn.Linear(in_features, num_classes, device=reference.device, dtype=reference.dtype)
            init_classifier(head)
        else:
            head = nn.Identity()
        parent, _, child = self.classifier_name.rpartition(".")
        setattr(self.get_submodule(parent), child, head)
        self.num_classes = num_classes
