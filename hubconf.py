"""torch.hub entry points: every network of ``senet_core``'s registry, by its registered name.

    model = torch.hub.load("path/to/this/repository", "se_resnet50", source="local", pretrained=True)
    torch.hub.list("path/to/this/repository", source="local")

Each entry point is ``senet_core.create_model(name, pretrained=..., **kwargs)``: ``pretrained=True``
loads the released weights where there are some (``senet_core.list_models(pretrained=True)``);
``num_classes``, ``in_chans``, ``features_only`` and the SE options pass through.
"""
from senet_core import create_model as _create_model, list_models as _list_models, model_entry as _model_entry

dependencies = ["torch", "torchvision"]


def _entry_point(name: str):
    def entry_point(pretrained: bool | str = False, **kwargs):
        return _create_model(name, pretrained=pretrained, **kwargs)

    entry = _model_entry(name)
    entry_point.__name__ = entry_point.__qualname__ = name
    summary = (entry.factory.__doc__ or "").strip() or f"{name} ({entry.paper or 'senet_core'})."
    entry_point.__doc__ = (f"{summary}\n\nsenet_core.create_model({name!r}, pretrained=pretrained, **kwargs); "
                           f"pretrained=True loads the released weights where there are some.")
    return entry_point


# torch.hub.list shows the public callables of this module: one per registered network.
for _name in _list_models():
    globals()[_name] = _entry_point(_name)
