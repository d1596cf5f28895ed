"""Langevin optimizers for Keras 3: L-SGD, L-Adam, L-RMSprop, L-Adadelta (+ L-Adagrad).

`sigma=0` gives each one's plain (non-Langevin) baseline; `layer_fraction` restricts the noise to
the input-side layers (Layer Langevin). `OPTIMIZERS` maps the search spaces' base names to classes.
A list of seeds makes an optimizer packed over K members, with `MemberRates` for per-member γ, σ.

Importing this package is cheap (a study file's check imports `schedule_spec`): Keras loads when
an optimizer, a schedule or `OPTIMIZERS` is first looked up.
"""

import importlib

# name -> the module defining it
_DEFINED_IN = {
    "LSGD": "sgd",
    "LAdam": "adam",
    "LRMSprop": "rmsprop",
    "LAdadelta": "adadelta",
    "LAdagrad": "adagrad",
    "LangevinOptimizer": "langevin",
    "noisy_layers": "layer_langevin",
    "noisy_variable_paths": "layer_langevin",
    "LogDecay": "schedules",
    "MemberRates": "schedules",
    "OffAfter": "schedules",
}
# the search spaces' base names
BASES = {"sgd": "LSGD", "adam": "LAdam", "rmsprop": "LRMSprop", "adadelta": "LAdadelta",
         "adagrad": "LAdagrad"}

__all__ = [*_DEFINED_IN, "OPTIMIZERS", "register_all"]


def register_all() -> None:
    """Import every optimizer and schedule, registering them with Keras' serialisation (what
    `keras.models.load_model` needs to restore a checkpoint)."""
    for module in dict.fromkeys(_DEFINED_IN.values()):
        importlib.import_module(f"harness.optimizers.{module}")


def __getattr__(name):
    if name == "OPTIMIZERS":
        return {base: __getattr__(cls) for base, cls in BASES.items()}
    if name in _DEFINED_IN:
        return getattr(importlib.import_module(f"harness.optimizers.{_DEFINED_IN[name]}"), name)
    raise AttributeError(f"module 'harness.optimizers' has no attribute {name!r}")
