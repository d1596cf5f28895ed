"""Layer Langevin: which variables receive the Langevin noise (paper, "Layer Langevin Algorithm").

The paper adds noise only to the parameters of a subset J of layers, the **first** fraction f of
`model.layers` counted from the input side, weightless layers included:

    J = model.layers[: floor(f · len(model.layers))]

(the public code's `range(int(0.3 * len(model.layers)))`; a tiny tolerance keeps 0.29 · 100 = 29).
f = 1 is full Langevin, f = 0 the non-Langevin baseline.
"""

from __future__ import annotations

import math


def check_fraction(layer_fraction) -> float:
    """Validate a layer fraction: a number in [0, 1]."""
    if isinstance(layer_fraction, bool) or not isinstance(layer_fraction, int | float):
        raise ValueError(
            f"layer_fraction must be a number in [0, 1]; got {layer_fraction!r}"
        )
    if not 0.0 <= float(layer_fraction) <= 1.0:
        raise ValueError(f"layer_fraction must be in [0, 1]; got {layer_fraction!r}")
    return float(layer_fraction)


def noisy_layers(model, layer_fraction: float) -> list:
    """The first `floor(f · len(model.layers))` layers of `model` (the input side)."""
    n_layers = len(model.layers)
    count = math.floor(check_fraction(layer_fraction) * n_layers + 1e-9)
    return list(model.layers[:count])


def noisy_variable_paths(model, layer_fraction: float) -> list[str]:
    """Paths of the trainable variables of the noisy layers, in model order.

    Paths (`variable.path`, e.g. "dense_3/kernel") survive `model.save()`/`load_model`, so an
    optimizer that stores them in its config restores the same mask.
    """
    return [
        variable.path
        for layer in noisy_layers(model, layer_fraction)
        for variable in layer.trainable_variables
    ]
