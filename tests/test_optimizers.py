"""The Langevin optimizers against a NumPy float64 reference of the formulas in the reference spec.

Gradients are fixed arrays fed to `optimizer.apply`, so the reference sees exactly what the
optimizer sees. With σ > 0 the reference is fed the same ξ, drawn here with `philox_normal` from the documented
key (seed), stream (step) and slice (the variable's offset); the noise-statistics tests check the
draws themselves.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from harness.optimizers import LSGD, OPTIMIZERS, LAdadelta, LAdagrad, LAdam, LRMSprop
from harness.optimizers.noise import philox_normal

SHAPES = [(3, 4), (3, 4), (5,)]  # a same-shape pair: state must not be shared
STEPS = 5


def _xi(seed, step, index, shapes):
    """ξ for 1-based step `step` of variable `index` of `shapes`, as the optimizer documents it:
    its slice of the step's one draw (key = seed, stream = step − 1)."""
    sizes = [int(np.prod(s)) for s in shapes]
    start = sum(sizes[:index])
    draw = philox_normal((sum(sizes),), seed, step - 1).numpy()
    return draw[start : start + sizes[index]].reshape(shapes[index])


def numpy_reference(name, hp, theta, grads, xis):
    """Float64 reference trajectory of one variable under the documented update rules (with
    their options): list of θ after each step. `hp` holds every hyper-parameter and σ."""
    theta = theta.astype(np.float64).copy()
    lr, sigma = hp["learning_rate"], hp["sigma"]
    m = v = v_max = r = g_bar = a = d = velocity = np.zeros_like(theta)
    s = np.full_like(theta, hp.get("initial_accumulator_value", 0.1))
    mu = hp.get("momentum", 0.0)
    out = []
    for k, (g, xi) in enumerate(zip(grads, xis), start=1):
        g = g.astype(np.float64)
        if name == "sgd":
            p, step = np.ones_like(theta), lr * g
            if mu > 0:
                velocity = mu * velocity - lr * g
                step = lr * g - mu * velocity if hp.get("nesterov") else -velocity
        elif name == "adam":
            b1, b2, eps = hp["beta_1"], hp["beta_2"], hp["epsilon"]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            v_max = np.maximum(v_max, v)
            v_hat = (v_max if hp.get("amsgrad") else v) / (1 - b2**k)
            p = 1 / ((1 - b1**k) * (eps + np.sqrt(v_hat)))
            step = lr * p * m
        elif name == "rmsprop":
            rho = hp["rho"]
            r = rho * r + (1 - rho) * g**2
            g_bar = rho * g_bar + (1 - rho) * g
            second_moment = r - g_bar**2 if hp.get("centered") else r
            p = 1 / (hp["epsilon"] + np.sqrt(second_moment))
            step = lr * p * g
            if mu > 0:
                velocity = mu * velocity + step
                step = velocity
        elif name == "adadelta":
            b2, eps = hp["beta_2"], hp["epsilon"]
            a = b2 * a + (1 - b2) * g**2
            p = np.sqrt(d + eps) / np.sqrt(a + eps)
            step = lr * p * g
        elif name == "adagrad":
            s = s + g**2
            p = 1 / (np.sqrt(s) + hp["epsilon"])
            step = lr * p * g
        delta = -step + sigma * np.sqrt(lr * p) * xi
        theta = theta + delta
        if name == "adadelta":
            d = hp["beta_1"] * d + (1 - hp["beta_1"]) * delta**2
        out.append(theta.copy())
    return out


HYPER = {
    "sgd": {"learning_rate": 0.05},
    "adam": {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-6},
    "rmsprop": {"learning_rate": 0.01, "rho": 0.9, "epsilon": 1e-6},
    "adadelta": {"learning_rate": 0.5, "beta_1": 0.95, "beta_2": 0.95, "epsilon": 1e-6},
    "adagrad": {"learning_rate": 0.05, "initial_accumulator_value": 0.1, "epsilon": 1e-6},
}


def _run(name, sigma, seed=7, steps=STEPS, grads_seed=0, options=None):
    """Apply `steps` fixed gradients to three variables; return initial values, grads, trajectory."""
    rng = np.random.default_rng(grads_seed)
    init = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    grads = [[rng.normal(size=s).astype(np.float32) for s in SHAPES] for _ in range(steps)]
    variables = [keras.Variable(x) for x in init]
    opt = OPTIMIZERS[name](sigma=sigma, seed=seed, **{**HYPER[name], **(options or {})})
    trajectory = []
    for step_grads in grads:
        opt.apply([tf.constant(g) for g in step_grads], variables)
        trajectory.append([v.numpy().copy() for v in variables])
    return init, grads, trajectory


def _check_against_reference(name, sigma, options, hp_options):
    seed = 7
    init, grads, trajectory = _run(name, sigma, seed=seed, options=options)
    hp = {**HYPER[name], "sigma": sigma, **hp_options}
    for i in range(len(SHAPES)):
        xis = [_xi(seed, k, i, SHAPES) for k in range(1, STEPS + 1)]
        expected = numpy_reference(name, hp, init[i], [g[i] for g in grads], xis)
        for k in range(STEPS):
            np.testing.assert_allclose(
                trajectory[k][i], expected[k], rtol=2e-4, atol=2e-5,
                err_msg=f"{name} {options} sigma={sigma} variable {i} step {k + 1}",
            )
    # the two same-shape variables had different gradients, so they must end up different
    assert not np.allclose(trajectory[-1][0], trajectory[-1][1])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_matches_numpy_reference(name, sigma):
    _check_against_reference(name, sigma, {}, {})


# (optimizer, options, hyper-parameters that make the option matter within STEPS steps)
OPTIONS = [
    ("sgd", {"momentum": 0.9}, {}),
    ("sgd", {"momentum": 0.9, "nesterov": True}, {}),
    ("rmsprop", {"centered": True}, {}),
    ("rmsprop", {"momentum": 0.5}, {}),
    ("rmsprop", {"centered": True, "momentum": 0.5}, {}),
    ("adam", {"amsgrad": True}, {"beta_2": 0.5}),  # v shrinks often: the running max differs
    ("adadelta", {"rho": 0.8}, {}),
]


@pytest.mark.parametrize("name, options, base", OPTIONS, ids=str)
@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_options_match_numpy_reference(name, options, base, sigma):
    hp_options = {**base, **options}
    if "rho" in hp_options and name == "adadelta":  # Keras' single decay sets both
        rho = hp_options.pop("rho")
        hp_options.update(beta_1=rho, beta_2=rho)
    _check_against_reference(name, sigma, {**base, **options}, hp_options)


@pytest.mark.parametrize("name, options, base", OPTIONS, ids=str)
def test_each_option_changes_the_trajectory(name, options, base):
    """An option that the optimizer silently ignored would pass the reference test only if the
    reference ignored it too: check that every option case moves the weights differently."""
    _, _, plain = _run(name, 0.0, options=base)
    _, _, with_option = _run(name, 0.0, options={**base, **options})
    assert not np.allclose(plain[-1][0], with_option[-1][0], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_noise_has_mean_zero_and_variance_sigma2_gamma_p(name):
    """The noise part θ_σ − θ_0 of one step, divided by √(σ²γP), is N(0, 1) elementwise."""
    sigma, n = 0.03, 200_000
    rng = np.random.default_rng(1)
    g = rng.normal(size=(n,)).astype(np.float32)
    theta0 = np.zeros(n, np.float32)

    def one_step(s):
        var = keras.Variable(theta0)
        OPTIMIZERS[name](sigma=s, seed=3, **HYPER[name]).apply([tf.constant(g)], [var])
        return var.numpy().astype(np.float64)

    noise = one_step(sigma) - one_step(0.0)
    hp = HYPER[name]
    lr = hp["learning_rate"]
    g64 = g.astype(np.float64)
    preconditioners = {
        "sgd": lambda: np.ones(n),
        "adam": lambda: 1 / ((1 - hp["beta_1"]) * (hp["epsilon"] + np.abs(g64))),
        "rmsprop": lambda: 1 / (hp["epsilon"] + np.sqrt((1 - hp["rho"]) * g64**2)),
        "adagrad": lambda: 1 / (
            np.sqrt(hp["initial_accumulator_value"] + g64**2) + hp["epsilon"]
        ),
    }
    p = preconditioners[name]()
    z = noise / np.sqrt(sigma**2 * lr * p)
    # mean of n N(0,1): sd 1/√n; variance estimate: sd √(2/n). Allow 5 sd (float32 rounding aside).
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n) + 1e-3
    # and it is Gaussian, not just standardised: about 95.4 % within 2 sd
    assert abs(np.mean(np.abs(z) < 2) - 0.9545) < 0.005


def test_same_seed_same_trajectory_other_seed_differs():
    _, _, a = _run("adam", 0.05, seed=11)
    _, _, b = _run("adam", 0.05, seed=11)
    _, _, c = _run("adam", 0.05, seed=12)
    for va, vb, vc in zip(a[-1], b[-1], c[-1]):
        np.testing.assert_array_equal(va, vb)
        assert not np.allclose(va, vc)


def test_noise_differs_between_steps_and_variables():
    """ξ must be fresh at every step and for every variable (no reuse of one key)."""
    sigma = 1.0
    shape = (1000,)
    vars_ = [keras.Variable(np.zeros(shape, np.float32)) for _ in range(2)]
    opt = LSGD(learning_rate=1e-4, sigma=sigma, seed=0)
    zero = [tf.zeros(shape)] * 2
    opt.apply(zero, vars_)
    first = [v.numpy().copy() for v in vars_]
    opt.apply(zero, vars_)
    second = [v.numpy() - f for v, f in zip(vars_, first)]
    assert abs(np.corrcoef(first[0], first[1])[0, 1]) < 0.15
    assert abs(np.corrcoef(first[0], second[0])[0, 1]) < 0.15


def _ten_layer_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((5,))] + [keras.layers.Dense(5, activation="relu") for _ in range(10)]
    )


def test_layer_langevin_moves_only_the_first_layers():
    """f = 0.3 on 10 layers: the first 3 layers' variables get noise, the 7 others do not."""
    model = _ten_layer_model()
    assert len(model.layers) == 10
    rng = np.random.default_rng(0)
    grads = [[rng.normal(size=v.shape).astype(np.float32) for v in model.trainable_variables]
             for _ in range(4)]

    def train(sigma, fraction):
        m = _ten_layer_model()
        opt = LAdam(learning_rate=1e-2, sigma=sigma, seed=5, layer_fraction=fraction)
        opt.resolve_layer_fraction(m)
        for step in grads:
            opt.apply([tf.constant(g) for g in step], m.trainable_variables)
        return [v.numpy() for v in m.trainable_variables], opt, m

    baseline, _, _ = train(0.0, 1.0)
    layer, opt, model = train(0.05, 0.3)
    # 3 Dense layers × (kernel, bias), the input side
    assert opt.noisy_variables == [v.path for v in model.trainable_variables[:6]]
    for i, (b, lv) in enumerate(zip(baseline, layer)):
        if i < 6:
            assert not np.allclose(b, lv), f"variable {i} of a noisy layer did not move by noise"
        else:
            np.testing.assert_array_equal(b, lv)


def test_layer_fraction_zero_equals_baseline_exactly_in_fit():
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(64, 5)).astype(np.float32)

    def fit(opt):
        m = _ten_layer_model()
        m.compile(optimizer=opt, loss="mse")
        m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return m.get_weights()

    plain = fit(LAdam(learning_rate=1e-2, sigma=0.0))
    zero_fraction = fit(LAdam(learning_rate=1e-2, sigma=0.1, layer_fraction=0.0))
    assert not np.allclose(plain[0], fit(LAdam(learning_rate=1e-2, sigma=0.1))[0])
    for a, b in zip(plain, zero_fraction):
        np.testing.assert_array_equal(a, b)


def test_unresolved_partial_fraction_is_a_clear_error():
    model = _ten_layer_model()
    model.compile(optimizer=LAdam(layer_fraction=0.3), loss="mse")
    with pytest.raises(ValueError, match="resolve_layer_fraction"):
        model.fit(np.zeros((4, 5)), np.zeros((4, 5)), verbose=0)


def _dense_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.Dense(8, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 6)).astype(np.float32), rng.integers(0, 3, 64)


@pytest.mark.parametrize("name", ["adam", "adadelta"])
def test_mirrored_strategy_replicas_stay_identical(name, two_cpu_strategy):
    strategy = two_cpu_strategy
    x, y = _data()
    with strategy.scope():
        model = _dense_model()
        model.compile(
            optimizer=OPTIMIZERS[name](sigma=0.05, seed=1, **HYPER[name]),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    for var in model.trainable_variables + model.optimizer.variables:
        copies = strategy.experimental_local_results(var.value)
        assert len(copies) == 2
        np.testing.assert_array_equal(copies[0].numpy(), copies[1].numpy(), err_msg=var.path)


def test_xla_gives_the_same_trajectory_as_graph_mode():
    x, y = _data()

    def fit(jit):
        model = _dense_model()
        model.compile(
            optimizer=LRMSprop(learning_rate=1e-2, sigma=0.05, seed=3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    for a, b in zip(fit(False), fit(True)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_save_load_round_trip_keeps_config_state_and_noise(tmp_path):
    from harness.optimizers import LogDecay

    x, y = _data()
    model = _dense_model()
    opt = LAdam(learning_rate=1e-2, sigma=LogDecay(0.05, decay_steps=10), seed=9,
                layer_fraction=0.5)
    opt.resolve_layer_fraction(model)
    model.compile(optimizer=opt,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)

    assert isinstance(loaded.optimizer, LAdam)
    assert isinstance(loaded.optimizer.sigma, LogDecay)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == 4
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # one more epoch on both: the same noise (same key) and state give the same weights
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "cls, options",
    [(LSGD, {"momentum": 0.5, "nesterov": True}), (LAdam, {"amsgrad": True}),
     (LRMSprop, {"centered": True, "momentum": 0.3}), (LAdadelta, {"rho": 0.8}),
     (LAdagrad, {"initial_accumulator_value": 0.2})],
)
def test_config_round_trip(cls, options):
    opt = cls(learning_rate=0.02, sigma=0.003, seed=4, layer_fraction=0.0, **options)
    config = opt.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    for key, value in options.items():
        if key == "rho":
            assert config["beta_1"] == config["beta_2"] == value
        else:
            assert config[key] == value


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": "big"}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"layer_fraction": 1.5}, "layer_fraction"),
        ({"layer_fraction": -0.1}, "layer_fraction"),
        ({"beta_1": 1.0}, "beta_1"),
        ({"seed": 1.5}, "seed"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_fail_at_construction_naming_the_argument(kwargs, field):
    with pytest.raises(ValueError, match=field) as info:
        LAdam(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "cls, kwargs, field",
    [
        (LSGD, {"momentum": -0.1}, "momentum"),
        (LSGD, {"momentum": 1.5}, "momentum"),
        (LSGD, {"nesterov": "yes"}, "nesterov"),
        (LRMSprop, {"momentum": 1.0}, "momentum"),
        (LRMSprop, {"centered": 1}, "centered"),
        (LAdam, {"amsgrad": None}, "amsgrad"),
        (LAdadelta, {"rho": 1.2}, "rho"),
        (LAdadelta, {"rho": 0.9, "beta_1": 0.5}, "rho"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(cls, kwargs, field):
    with pytest.raises(ValueError, match=field) as info:
        cls(**kwargs)
    assert "\n" not in str(info.value)


def test_noise_with_gradient_accumulation_in_fit():
    """Keras applies the update inside a cond every n-th step: the step's draw is made there."""
    x, y = _data()

    def fit(sigma):
        model = _dense_model()
        model.compile(optimizer=LAdam(learning_rate=1e-2, sigma=sigma, seed=2,
                                      gradient_accumulation_steps=2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        return model.get_weights()

    plain, noisy = fit(0.0), fit(0.05)
    assert all(np.all(np.isfinite(w)) for w in noisy)
    assert not np.allclose(plain[0], noisy[0])


def test_centered_rmsprop_stays_finite_when_the_gradient_barely_varies():
    """r − ḡ² ≥ 0 in exact arithmetic, but float32 rounding makes it negative for nearly constant
    gradients (seen within 150 steps over 100k weights): √ of it must not turn weights into NaN."""
    n, steps = 100_000, 200
    rng = np.random.default_rng(0)
    scale = tf.constant(rng.uniform(0.01, 100, n).astype(np.float32))
    var = keras.Variable(np.zeros(n, np.float32))
    optimizer = LRMSprop(learning_rate=1e-3, sigma=0.0, centered=True)
    step = tf.function(lambda jitter: optimizer.apply([scale * (1 + 1e-7 * jitter)], [var]))
    for _ in range(steps):
        step(tf.constant(rng.standard_normal(n).astype(np.float32)))
    assert np.all(np.isfinite(var.numpy()))
