"""Packed optimizers (seed = a list of K seeds, issue 15 item 2): member k of a packed optimizer
steps exactly like an unpacked optimizer of the same class with member k's seed, learning rate,
σ and schedules, stepping member k's slice of every variable.

Packed variables carry a leading member axis K = 3 (shapes [3, 5, 4] and [3, 4]); the reference
is three unpacked optimizers fed the member slices of the same gradients. Tolerance rtol 1e-6,
atol 1e-7 (float32): a member's scheduled rate is v_k · u_t, the unpacked schedule's is computed
from v_k directly, and the two may differ by one rounding.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from harness.optimizers import LSGD, OPTIMIZERS, LAdam, LRMSprop, MemberRates
from harness.optimizers.noise import philox_normal
from harness.optimizers.schedule_spec import SCHEDULE_NAMES
from harness.optimizers.schedules import from_spec

K = 3
SHAPES = [(5, 4), (4,)]  # one member's shapes; packed: (3, 5, 4), (3, 4)
SEEDS = [11, 12, 13]
SIGMAS = [0.05, 0.0, 0.1]  # member 1 is the plain optimizer
RATES = {  # one learning rate per member, each optimizer in its useful range
    "sgd": [0.05, 0.02, 0.1],
    "adam": [0.01, 0.03, 0.005],
    "rmsprop": [0.01, 0.004, 0.02],
    "adadelta": [0.5, 1.0, 0.2],
    "adagrad": [0.05, 0.1, 0.02],
}
STEPS, STEPS_PER_EPOCH = 6, 2
LR_PIECEWISE = {"name": "piecewise", "epoch": 1, "factor": 0.3}  # γ drops at step 2
SIGMA_OFF = {"name": "off_after", "epoch": 2}  # noise on steps 0-3 only
TOLERANCE = {"rtol": 1e-6, "atol": 1e-7}


def _problem(steps=STEPS, seed=0):
    """Packed initial values and per-step packed gradients (float32)."""
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=(K, *s)).astype(np.float32) for s in SHAPES]
    grads = [[rng.normal(size=(K, *s)).astype(np.float32) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _member(arrays, k):
    return [a[k] for a in arrays]


def _trajectory(optimizer, init, grads, names=None):
    """Values of every variable after each step of `optimizer.apply`."""
    names = names or [None] * len(init)
    variables = [keras.Variable(x, name=n) for x, n in zip(init, names)]
    out = []
    for step_grads in grads:
        optimizer.apply([tf.constant(g) for g in step_grads], variables)
        out.append([v.numpy().copy() for v in variables])
    return out


def _assert_member_equals(packed, single, k, label):
    for step, (p, s) in enumerate(zip(packed, single)):
        for i, (pv, sv) in enumerate(zip(p, s)):
            np.testing.assert_allclose(pv[k], sv, **TOLERANCE,
                                       err_msg=f"{label}: member {k} variable {i} step {step + 1}")


def _rates(values, spec):
    return from_spec(values, spec, STEPS_PER_EPOCH)


# (optimizer, options): each optimizer plain, and the options that use γ on another code path
CASES = [(name, {}) for name in sorted(OPTIMIZERS)] + [
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", {"amsgrad": True}),
    ("rmsprop", {"centered": True, "momentum": 0.5}),
]


@pytest.mark.parametrize("name, options", CASES)
@pytest.mark.parametrize("lr_spec, sigma_spec", [(None, None), (LR_PIECEWISE, SIGMA_OFF)],
                         ids=["constant", "piecewise-lr+off_after-sigma"])
def test_each_member_steps_like_its_unpacked_optimizer(name, options, lr_spec, sigma_spec):
    cls, lrs = OPTIMIZERS[name], RATES[name]
    init, grads = _problem()
    packed_opt = cls(learning_rate=_rates(lrs, lr_spec), sigma=_rates(SIGMAS, sigma_spec),
                     seed=SEEDS, **options)
    assert packed_opt.members == K
    packed = _trajectory(packed_opt, init, grads)
    member_grads = [[_member(g, k) for g in grads] for k in range(K)]
    for k in range(K):
        single_opt = cls(learning_rate=_rates(lrs[k], lr_spec),
                         sigma=_rates(SIGMAS[k], sigma_spec), seed=SEEDS[k], **options)
        assert single_opt.members is None
        single = _trajectory(single_opt, _member(init, k), member_grads[k])
        _assert_member_equals(packed, single, k, f"{name} {options}")
    # σ = 0 member: the plain optimizer (σ the float 0, no draw at all)
    plain = _trajectory(cls(learning_rate=_rates(lrs[1], lr_spec), sigma=0.0, **options),
                        _member(init, 1), member_grads[1])
    _assert_member_equals(packed, plain, 1, f"{name} {options} plain")
    # and the noise did act on the other members
    noiseless = _trajectory(cls(learning_rate=_rates(lrs[0], lr_spec), sigma=0.0, **options),
                            _member(init, 0), member_grads[0])
    assert not np.allclose(packed[-1][0][0], noiseless[-1][0], rtol=1e-4, atol=1e-4)


def test_noise_is_each_members_documented_slice_of_its_own_stream():
    """Zero gradients: L-SGD moves member k of variable i by σ_k √γ_k ·
    philox_normal((N,), seed_k, t)[o_i : o_i + n_i], N and o_i from one member's sizes."""
    lrs, sigmas = [0.04, 0.09, 0.01], [0.5, 0.2, 1.5]
    variables = [keras.Variable(np.zeros((K, *s), np.float32)) for s in SHAPES]
    optimizer = LSGD(learning_rate=MemberRates(lrs), sigma=MemberRates(sigmas), seed=SEEDS)
    sizes = [int(np.prod(s)) for s in SHAPES]
    offsets = np.cumsum([0, *sizes])
    for t in range(3):
        before = [v.numpy().copy() for v in variables]
        optimizer.apply([tf.zeros((K, *s)) for s in SHAPES], variables)
        for k in range(K):
            xi = philox_normal((sum(sizes),), SEEDS[k], t).numpy()
            for i, v in enumerate(variables):
                expected = sigmas[k] * np.sqrt(lrs[k]) * xi[offsets[i]:offsets[i + 1]]
                np.testing.assert_allclose((v.numpy() - before[i])[k],
                                           expected.reshape(SHAPES[i]), rtol=1e-5, atol=1e-7,
                                           err_msg=f"member {k} variable {i} step {t}")


@pytest.mark.parametrize("noisy", [["first"], ["second"]])
def test_layer_langevin_mask_by_path_on_a_packed_pair(noisy):
    """Explicit `noisy_variables` (paths) mask the same variables packed as unpacked; a masked-out
    variable moves exactly like the plain optimizer."""
    names = ["first", "second"]
    init, grads = _problem()
    lrs = RATES["adam"]
    packed = _trajectory(LAdam(learning_rate=MemberRates(lrs), sigma=MemberRates(SIGMAS),
                               seed=SEEDS, noisy_variables=noisy), init, grads, names)
    quiet = names.index("second" if noisy == ["first"] else "first")
    for k in range(K):
        member_grads = [_member(g, k) for g in grads]
        single = _trajectory(LAdam(learning_rate=lrs[k], sigma=SIGMAS[k], seed=SEEDS[k],
                                   noisy_variables=noisy), _member(init, k), member_grads, names)
        _assert_member_equals(packed, single, k, f"noisy {noisy}")
        plain = _trajectory(LAdam(learning_rate=lrs[k], sigma=0.0), _member(init, k),
                            member_grads, names)
        for step in range(STEPS):
            np.testing.assert_allclose(packed[step][quiet][k], plain[step][quiet], **TOLERANCE)
    # the noisy variable did get noise (member K − 1, σ > 0, is the last `plain` run)
    assert not np.allclose(packed[-1][1 - quiet][K - 1], plain[-1][1 - quiet])


@pytest.mark.parametrize("argument, value", [("weight_decay", 0.01), ("clipnorm", 1.0),
                                             ("global_clipnorm", 1.0)])
def test_packed_refuses_options_that_mix_members(argument, value):
    with pytest.raises(ValueError, match=f"{argument} is not supported by a packed") as info:
        LAdam(seed=SEEDS, **{argument: value})
    assert "\n" not in str(info.value)
    LAdam(seed=SEEDS, clipvalue=1.0)  # elementwise: allowed


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"seed": SEEDS, "learning_rate": MemberRates([0.1, 0.2])}, "learning_rate"),
        ({"seed": SEEDS, "sigma": MemberRates([0.1, 0.2, 0.3, 0.4])}, "sigma"),
        ({"seed": 3, "learning_rate": MemberRates([0.1])}, "learning_rate"),
        ({"seed": 3, "sigma": MemberRates([0.1])}, "sigma"),
        ({"seed": SEEDS, "learning_rate": MemberRates([0.1, 0.0, 0.2])}, "learning_rate"),
        ({"seed": SEEDS, "sigma": MemberRates([0.1, -0.1, 0.2])}, "sigma"),
        ({"seed": []}, "seed"),
        ({"seed": [1, -2]}, "seed"),
        ({"seed": [1, 2.5]}, "seed"),
        ({"seed": [True, 1]}, "seed"),
    ],
)
def test_bad_packed_arguments_fail_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field) as info:
        LAdam(**kwargs)
    assert "\n" not in str(info.value)


def test_variables_without_the_member_axis_are_refused_at_build():
    optimizer = LAdam(seed=SEEDS)
    with pytest.raises(ValueError, match="leading member axis"):
        optimizer.build([keras.Variable(np.zeros((4, 5), np.float32))])


def test_member_rates_are_values_times_the_unit_schedule():
    values = [0.1, 0.25, 2.0]
    np.testing.assert_array_equal(MemberRates(values)(7).numpy(),
                                  np.array(values, np.float32))
    halves = MemberRates(values, keras.optimizers.schedules.PiecewiseConstantDecay([2], [1.0, 0.5]))
    np.testing.assert_allclose(halves(2).numpy(), values, rtol=1e-7)
    np.testing.assert_allclose(halves(3).numpy(), np.multiply(values, 0.5), rtol=1e-7)
    assert halves(3).shape == (3,) and halves(3).dtype == tf.float32
    for bad in ([], [0.1, "x"], [float("nan")], 0.1):
        with pytest.raises(ValueError, match="MemberRates values"):
            MemberRates(bad)


SPECS = {"constant": {"name": "constant"}, "log": {"name": "log", "epochs": 2},
         "inverse_time": {"name": "inverse_time", "epochs": 2},
         "piecewise": {"name": "piecewise", "epoch": 1, "factor": 0.1},
         "off_after": {"name": "off_after", "epoch": 1}}


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
def test_from_spec_of_a_list_gives_each_member_its_own_schedule(schedule):
    values, spec, spe = [0.3, 0.05, 0.7], SPECS[schedule], 5
    rates = from_spec(values, spec, spe)
    assert isinstance(rates, MemberRates)
    assert (rates.unit is None) == (schedule == "constant")
    for t in (0, 4, 5, 9, 37):
        expected = [float(from_spec(v, spec, spe)(t)) if schedule != "constant" else v
                    for v in values]
        np.testing.assert_allclose(rates(t).numpy(), expected, rtol=1e-6, err_msg=f"step {t}")


def test_from_spec_of_all_zero_values_is_the_float_zero():
    assert from_spec([0.0, 0.0, 0.0], SIGMA_OFF, 10) == 0.0
    assert isinstance(from_spec([0.0, 0], None, 10), float)
    assert not isinstance(from_spec([0.0, 0.1], None, 10), float)
    with pytest.raises(ValueError, match="unknown schedule name"):
        from_spec([0.0, 0.0], {"name": "cosine"}, 10)


def test_all_zero_member_sigmas_draw_nothing():
    variable = keras.Variable(np.zeros((K, 4), np.float32))
    optimizer = LSGD(learning_rate=0.1, sigma=MemberRates([0.0] * K), seed=SEEDS)
    optimizer.build([variable])
    assert not optimizer.adds_noise(variable)


def test_config_round_trip_keeps_seeds_rates_and_trajectory():
    init, grads = _problem(steps=4)
    optimizer = LRMSprop(learning_rate=_rates(RATES["rmsprop"], LR_PIECEWISE),
                         sigma=_rates(SIGMAS, {"name": "log", "epochs": 1}), seed=SEEDS,
                         centered=True, noisy_variables=["second"])
    config = optimizer.get_config()
    assert config["seed"] == SEEDS
    json.dumps(config)  # plain JSON types only
    clone = LRMSprop.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    assert clone.members == K and isinstance(clone.sigma, MemberRates)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert restored.get_config() == config
    names = ["first", "second"]
    for a, b in zip(_trajectory(optimizer, init, grads, names)[-1],
                    _trajectory(clone, init, grads, names)[-1]):
        np.testing.assert_array_equal(a, b)


def test_xla_gives_the_same_packed_steps_as_eager():
    init, grads = _problem(steps=4)

    def run(jit):
        variables = [keras.Variable(x) for x in init]
        optimizer = LAdam(learning_rate=_rates(RATES["adam"], LR_PIECEWISE),
                          sigma=_rates(SIGMAS, SIGMA_OFF), seed=SEEDS)
        optimizer.build(variables)

        def step(g):
            optimizer.apply(g, variables)

        apply = tf.function(step, jit_compile=True) if jit else step
        for step_grads in grads:
            apply([tf.constant(g) for g in step_grads])
        return [v.numpy() for v in variables]

    for a, b in zip(run(False), run(True)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
