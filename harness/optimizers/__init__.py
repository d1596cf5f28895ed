"""Langevin optimizers for Keras 3: L-SGD, L-Adam, L-RMSprop, L-Adadelta (+ L-Adagrad).

`sigma=0` gives each one's plain (non-Langevin) baseline; `layer_fraction` restricts the noise to
the input-side layers (Layer Langevin). `OPTIMIZERS` maps the search spaces' base names to classes.
A list of seeds makes an optimizer packed over K members, with `MemberRates` for per-member γ, σ.
"""

from harness.optimizers.adadelta import LAdadelta
from harness.optimizers.adagrad import LAdagrad
from harness.optimizers.adam import LAdam
from harness.optimizers.langevin import LangevinOptimizer
from harness.optimizers.layer_langevin import noisy_layers, noisy_variable_paths
from harness.optimizers.rmsprop import LRMSprop
from harness.optimizers.schedules import LogDecay, MemberRates, OffAfter
from harness.optimizers.sgd import LSGD

OPTIMIZERS = {
    "sgd": LSGD,
    "adam": LAdam,
    "rmsprop": LRMSprop,
    "adadelta": LAdadelta,
    "adagrad": LAdagrad,
}

__all__ = [
    "LSGD",
    "LAdam",
    "LRMSprop",
    "LAdadelta",
    "LAdagrad",
    "LangevinOptimizer",
    "LogDecay",
    "MemberRates",
    "OffAfter",
    "OPTIMIZERS",
    "noisy_layers",
    "noisy_variable_paths",
]
