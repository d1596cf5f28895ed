"""The shared Langevin machinery: noise scale σ, seeded per-variable noise, the Layer Langevin mask.

Preconditioned Langevin (paper, "Preconditioned Langevin Gradient Descent", after Li et al. 2016):

    θ_{k} = θ_{k-1} − γ_k · P_k · ĝ_k + σ_k · √(γ_k · P_k) · ξ_k,     ξ_k ~ N(0, I)

elementwise, where each optimizer defines its preconditioner P_k and drift direction ĝ_k (the
gradient, or Adam's momentum). Layer Langevin adds the noise term only to the variables of the
first fraction of the model's layers (`layer_langevin.py`).

Noise: one draw per step for all variables. At step k (0-based `iterations`) the optimizer draws
`noise.philox_normal` with key = seed and stream k, and variable i takes the slice

    ξ_{k,i} = philox_normal((N,), seed, k)[o_i : o_i + n_i],   o_i = n_0 + … + n_{i-1}

(n_i the size of variable i in the optimizer's order, N the total; only the prefix up to the
last noisy variable is drawn, which leaves the numbers unchanged). One fused draw instead of one
op chain per variable. The noise is reproducible from `seed`, different for every variable and
step (disjoint slices and streams), identical on every replica of a `MirroredStrategy` (each
replica draws the same stream on its own device), and the same with and without XLA.

Packed optimizer (seed = [s_0, …, s_{K−1}]: K members trained as one model whose every variable
has a leading member axis K): member k draws exactly what an unpacked optimizer with seed s_k
would draw,

    ξ_{k,t,i} = philox_normal((N,), s_k, t)[o_i : o_i + n_i],   n_i = prod(shape_i[1:])

(N, o_i from one member's sizes), stacked over members to [K, N], scaled row by row by
σ_{k,t} √γ_{k,t}, split along axis 1 and reshaped to the packed variable's shape [K, …]. γ and
σ are then floats (shared) or `MemberRates` (one per member); every rate that meets a variable
goes through `member_rate`, which puts a [K] vector on the member axis.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from harness.optimizers.layer_langevin import check_fraction, noisy_variable_paths
from harness.optimizers.noise import philox_normal
from harness.optimizers.schedules import MemberRates

# Keras options that act across a whole variable (clipping norms) or need a scalar learning rate
# (decoupled weight decay): they would mix the members of a packed optimizer.
PACKED_REFUSED = ("weight_decay", "clipnorm", "global_clipnorm")


def check_rate(name: str, value, *, allow_zero: bool, members: int | None = None):
    """A float ≥ 0 (or > 0) or a `LearningRateSchedule`; for a packed optimizer of `members` = K
    members also `MemberRates` of K such values. Anything else is a ValueError naming `name`."""
    if isinstance(value, MemberRates):
        if members is None:
            raise ValueError(f"{name} gives one value per member (MemberRates): seed must then be "
                             "a list with one seed per member")
        if len(value.values) != members:
            raise ValueError(f"{name} gives {len(value.values)} member values but seed gives "
                             f"{members} members")
        for v in value.values:
            check_rate(name, v, allow_zero=allow_zero)
        return value
    if isinstance(value, LearningRateSchedule):
        return value
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"{name} must be a number {bound} or a keras LearningRateSchedule; got {value!r}"
        )
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")
    return value


def check_unit(name: str, value, *, closed_high: bool = False) -> float:
    """A decay rate in [0, 1) (or [0, 1]); anything else is a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number in [0, 1); got {value!r}")
    if not (0.0 <= value < 1.0 or (closed_high and value == 1.0)):
        raise ValueError(f"{name} must be in [0, 1{']' if closed_high else ')'}; got {value!r}")
    return float(value)


def check_flag(name: str, value) -> bool:
    """A boolean option; anything else is a ValueError naming `name`."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return value


def check_seed(seed) -> int | list[int]:
    """An integer key >= 0, or a non-empty list of them (one per member: a packed optimizer)."""
    def valid(s):
        return not isinstance(s, bool) and isinstance(s, int) and s >= 0

    if isinstance(seed, list | tuple):
        if not seed or not all(valid(s) for s in seed):
            raise ValueError(f"seed must be an integer >= 0 or a non-empty list of them; got {seed!r}")
        return list(seed)
    if not valid(seed):
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    return seed


def is_zero(rate) -> bool:
    """Whether a σ is zero for every member and step (known at trace time: no draw needed)."""
    if isinstance(rate, MemberRates):
        return all(v == 0.0 for v in rate.values)
    return isinstance(rate, float) and rate == 0.0


def check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}")
    return float(value)


class LangevinOptimizer(keras.optimizers.Optimizer):
    """Base of the Langevin optimizers: owns σ, the noise seed and the per-variable noise mask.

    Args:
        learning_rate: γ, a float > 0 or a `LearningRateSchedule` (packed: or `MemberRates`).
        sigma: σ, a float >= 0 or a `LearningRateSchedule` of the step; 0 is the plain optimizer
            (packed: or `MemberRates`, one σ per member).
        seed: integer key of the noise stream, or a list of K keys: the optimizer is then
            *packed* over K members (`members` = K, else None; every variable has a leading
            member axis K; `weight_decay`, `clipnorm` and `global_clipnorm` are refused).
        layer_fraction: f in [0, 1]; noise only on the first f of `model.layers`. For 0 < f < 1
            call `resolve_layer_fraction(model)` before training (it records which variables).
        noisy_variables: explicit variable paths to receive noise (what `resolve_layer_fraction`
            stores; kept in the config so a loaded model gets the same mask).
        **kwargs: the Keras optimizer arguments (clipnorm, weight_decay, name, ...).

    Subclasses implement `build` (their slots) and `update_step`, computing the increment with
    `langevin_increment(variable, drift, learning_rate, preconditioner)` and casting every rate
    that meets a variable with `member_rate(value, variable)`.
    """

    def __init__(
        self,
        learning_rate,
        sigma,
        seed: int = 0,
        layer_fraction: float = 1.0,
        noisy_variables: list[str] | None = None,
        **kwargs,
    ):
        seed = check_seed(seed)
        members = len(seed) if isinstance(seed, list) else None
        if members is not None:
            for argument in PACKED_REFUSED:
                if kwargs.get(argument) is not None:
                    raise ValueError(
                        f"{argument} is not supported by a packed optimizer (seed is a list): it "
                        f"would mix the members; got {argument}={kwargs[argument]!r}"
                    )
        learning_rate = check_rate("learning_rate", learning_rate, allow_zero=False,
                                   members=members)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self._sigma = check_rate("sigma", sigma, allow_zero=True, members=members)
        self.seed = seed
        self.members = members
        self.layer_fraction = check_fraction(layer_fraction)
        self.noisy_variables = None if noisy_variables is None else list(noisy_variables)
        self._noise_mask: list[bool] = []
        self._step_noise: dict = {}  # device -> this step's draw, see `standard_normal`

    # -- Layer Langevin ---------------------------------------------------------------------------
    def resolve_layer_fraction(self, model):
        """Fix the noisy variables to those of the first `layer_fraction` of `model.layers`."""
        if self.built:
            raise ValueError("resolve_layer_fraction(model) must be called before the optimizer is built")
        self.noisy_variables = noisy_variable_paths(model, self.layer_fraction)
        return self

    def _build_noise_mask(self, var_list):
        """One flag per variable, by index: strictly per variable, never shared by shape."""
        if self.noisy_variables is not None:
            wanted = set(self.noisy_variables)
            paths = [v.path for v in var_list]
            missing = wanted - set(paths)
            if missing:
                raise ValueError(
                    f"noisy_variables names variables the model does not have: {sorted(missing)[:5]}"
                )
            return [p in wanted for p in paths]
        if self.layer_fraction in (0.0, 1.0):
            return [self.layer_fraction == 1.0] * len(var_list)
        raise ValueError(
            f"layer_fraction={self.layer_fraction} must be resolved against the model: call "
            "optimizer.resolve_layer_fraction(model) before compile/fit"
        )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._noise_mask = self._build_noise_mask(var_list)
        # variable i's noise is the slice [o_i, o_i + n_i) of the step's draw: the draw covers
        # the variables up to the last noisy one and is split into their (one member's) sizes
        if self.members is not None:
            for v in var_list:
                if len(v.shape) == 0 or v.shape[0] != self.members:
                    raise ValueError(f"a packed optimizer over {self.members} members needs a "
                                     f"leading member axis on every variable; {v.path} has shape "
                                     f"{tuple(v.shape)}")
        sizes = [math.prod(v.shape[1:] if self.members else v.shape) for v in var_list]
        noisy = [i for i, m in enumerate(self._noise_mask) if m]
        self._noise_sizes = sizes[: noisy[-1] + 1] if noisy else []
        self._noise_draw_size = sum(self._noise_sizes)

    # -- noise -------------------------------------------------------------------------------------
    @property
    def sigma(self):
        return self._sigma

    def current_sigma(self):
        """σ_k for the step being taken (a schedule is evaluated at `iterations`, like γ)."""
        if isinstance(self._sigma, LearningRateSchedule):
            return self._sigma(self.iterations)
        return self._sigma

    def adds_noise(self, variable) -> bool:
        """Whether `variable` gets a noise term (decided at trace time: no cost when False)."""
        if is_zero(self._sigma):
            return False
        return self._noise_mask[self._get_variable_index(variable)]

    def apply(self, grads, trainable_variables=None):
        """Keras' `apply`, with this step's noise draw forgotten first (it is made lazily)."""
        self._step_noise = {}
        return super().apply(grads, trainable_variables)

    def scaled_normal(self, variable, learning_rate):
        """σ_k √γ_k ξ of the variable's shape, ξ ~ N(0, I) its slice of the step's one draw.

        The draw (key = seed, stream = `iterations`) is made and scaled by σ_k √γ_k at the step's
        first noisy variable, once per device (each replica of a distribution strategy draws on
        its own device); it depends on nothing but the step counter and the schedules, so the
        runtime may schedule it early."""
        if variable.device not in self._step_noise:
            self._step_noise[variable.device] = self._scaled_draw(learning_rate)
        piece = self._step_noise[variable.device][self._get_variable_index(variable)]
        return ops.cast(ops.reshape(piece, variable.shape), variable.dtype)

    def _scaled_draw(self, learning_rate):
        """The step's draw times σ_k √γ_k, split into the variables' pieces ([K, n_i] packed)."""
        stream = ops.cast(self.iterations, "int64")
        scale = ops.cast(self.current_sigma(), "float32") * ops.sqrt(
            ops.cast(learning_rate, "float32"))
        if self.members is None:
            xi = philox_normal((self._noise_draw_size,), self.seed, stream)
            return tf.split(scale * xi, self._noise_sizes)
        xi = tf.stack([philox_normal((self._noise_draw_size,), seed, stream) for seed in self.seed])
        return tf.split(self._on_member_axis(scale, 2) * xi, self._noise_sizes, axis=1)

    # -- per-member values -------------------------------------------------------------------------
    def member_rate(self, value, variable):
        """`value` (γ_t, σ_t, a float) cast to the variable's dtype; packed, a [K] vector becomes
        [K, 1, …, 1] of the variable's rank so that member k's value meets member k's slice."""
        return self._on_member_axis(ops.cast(value, variable.dtype), len(variable.shape))

    def _on_member_axis(self, value, rank):
        if self.members is None or len(value.shape) == 0:
            return value
        return ops.reshape(value, (self.members,) + (1,) * (rank - 1))

    def langevin_increment(self, variable, drift, learning_rate, preconditioner):
        """Δθ = −γ·P·ĝ + σ·√(γ·P)·ξ, with `drift` = γ·P·ĝ already computed by the caller and the
        noise computed as √P · (σ√γ ξ); `preconditioner` 1.0 (P = I) costs no square root."""
        if not self.adds_noise(variable):
            return -drift
        noise = self.scaled_normal(variable, learning_rate)
        if not (isinstance(preconditioner, float) and preconditioner == 1.0):
            noise = ops.sqrt(preconditioner) * noise
        return noise - drift

    # -- serialisation -----------------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        sigma = self._sigma
        if isinstance(sigma, LearningRateSchedule):
            sigma = keras.saving.serialize_keras_object(sigma)
        config.update(
            {
                "sigma": sigma,
                "seed": self.seed,
                "layer_fraction": self.layer_fraction,
                "noisy_variables": self.noisy_variables,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if isinstance(config.get("sigma"), dict):
            config["sigma"] = keras.saving.deserialize_keras_object(
                config["sigma"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)
