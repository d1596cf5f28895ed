"""The paper's network families, parameterised by depth: `build_model(name, depth, ...)`.

Every builder returns a functional `keras.Model` whose `model.layers` run from the input side to
the logits (Layer Langevin perturbs the first fraction of that list) and whose logits layer is
float32 even under a mixed-precision policy. Build under `strategy.scope()` for distribution.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness.signatures import family_options

if TYPE_CHECKING:  # the builders import Keras (and TensorFlow) when a model is built
    import keras

MODEL_FAMILIES = ("dense", "conv_dense", "highway", "resnet", "densenet", "vgg")


def build_model(
    name: str, depth: int, input_shape: tuple, num_classes: int, **options
) -> keras.Model:
    """Build family `name` at `depth` for images of `input_shape` and `num_classes` classes.

    `options` are the family's keyword options (e.g. `width` for dense nets, `shortcut` for
    ResNets, `growth_rate` for DenseNets); an unknown family, depth or option is a ValueError
    that names the allowed values.
    """
    if name not in MODEL_FAMILIES:
        raise ValueError(f"unknown model family {name!r}; choose one of {MODEL_FAMILIES}")
    builder = importlib.import_module(f"harness.models.{name}").build
    try:
        return builder(depth, tuple(input_shape), num_classes, **options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ValueError(
            f"{name}: unknown option in {sorted(options)}; allowed options: "
            f"{sorted(family_options(name))}"
        ) from exc
