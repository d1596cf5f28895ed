"""The model zoo: every family builds, trains a step, has the expected size and layer order."""

import re

import keras
import numpy as np
import pytest

from harness.models import MODEL_FAMILIES, build_model
from harness.models.highway import Highway
from harness.models.resnet import PaddingShortcut

# Small but complete configurations, so that a training step takes well under a second.
TINY = {
    "dense": dict(depth=3, input_shape=(8, 8, 1)),
    "conv_dense": dict(depth=2, input_shape=(16, 16, 1)),
    "highway": dict(depth=3, input_shape=(8, 8, 1)),
    "resnet": dict(depth=8, input_shape=(8, 8, 3)),
    "densenet": dict(depth=7, input_shape=(8, 8, 3), growth_rate=4),
    "vgg": dict(depth=8, input_shape=(8, 8, 3)),
}


def _compile_and_step(model, num_classes=5, batch=4):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.random((batch, *model.input_shape[1:]), dtype=np.float32)
    y = rng.integers(0, num_classes, batch)
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    return float(np.asarray(loss).ravel()[0]), before, model.get_weights()


@pytest.mark.parametrize("family", MODEL_FAMILIES)
def test_every_family_builds_and_trains_one_step(family):
    model = build_model(family, num_classes=5, **TINY[family])
    assert isinstance(model, keras.Model)
    assert model.output_shape == (None, 5)
    loss, before, after = _compile_and_step(model)
    assert np.isfinite(loss)
    changed = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert sum(changed) > len(changed) // 2  # the trainable weights moved


@pytest.mark.parametrize("family", MODEL_FAMILIES)
def test_layers_run_from_input_to_logits(family):
    model = build_model(family, num_classes=5, **TINY[family])
    names = [layer.name for layer in model.layers]
    assert isinstance(model.layers[0], keras.layers.InputLayer)
    assert names[-1] == "logits"
    # Every block's layers come after the previous block's (Layer Langevin takes a prefix).
    block_of = {}
    for index, name in enumerate(names):
        match = re.match(
            r"(dense|highway|conv|stage\d+_block|block\d+_layer|transition)_?(\d+)", name
        )
        if match:
            key = match.group(0)
            block_of.setdefault(key, []).append(index)
    spans = sorted(block_of.values(), key=lambda idx: idx[0])
    assert len(spans) >= 2
    for previous, following in zip(spans, spans[1:], strict=False):
        assert max(previous) < min(following), f"{family}: blocks interleave in {names}"


def test_dense_family_parameter_counts_follow_the_formula():
    # Flatten(784) → 30 × Dense(64) → Dense(10)
    model = build_model("dense", 30, (28, 28, 1), 10)
    assert model.count_params() == (784 * 64 + 64) + 29 * (64 * 64 + 64) + (64 * 10 + 10)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]) == 31

    # 28 → conv4 25 → pool 12 → conv4 9 → pool 4: 4·4·32 = 512 features
    model = build_model("conv_dense", 3, (28, 28, 1), 10)
    convs = (4 * 4 * 1 * 32 + 32) + (4 * 4 * 32 * 32 + 32)
    dense = (512 * 64 + 64) + 2 * (64 * 64 + 64) + (64 * 10 + 10)
    assert model.count_params() == convs + dense

    # Flatten(3072) → Dense(64) → 5 × Highway(64): two 64×64 maps each → Dense(10)
    model = build_model("highway", 5, (32, 32, 3), 10)
    highway = 2 * (64 * 64 + 64)
    assert model.count_params() == (3072 * 64 + 64) + 5 * highway + (64 * 10 + 10)


def test_resnet20_has_the_papers_0_27m_parameters():
    model = build_model("resnet", 20, (32, 32, 3), 10)
    assert round(model.count_params() / 1e6, 2) == 0.27  # He et al. 2016, Table 6
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 19  # + the Dense head: 20 weighted layers
    projection = build_model("resnet", 20, (32, 32, 3), 10, shortcut="projection")
    # two 1×1 projections (16→32, 32→64) with their BN
    assert projection.count_params() - model.count_params() == (16 * 32 + 4 * 32 + 32 * 64 + 4 * 64)
    # the plain control has the same weights minus nothing: option-A shortcuts are weightless
    assert build_model("vgg", 20, (32, 32, 3), 10).count_params() == model.count_params()
    assert not any(
        isinstance(layer, keras.layers.Add) for layer in build_model("vgg", 8, (8, 8, 3), 10).layers
    )


def test_densenet_configurations_of_the_paper():
    densenet40 = build_model("densenet", 40, (32, 32, 3), 10, growth_rate=12)
    assert round(densenet40.count_params() / 1e6, 1) == 1.0  # Huang et al. 2017, Table 2
    small = build_model("densenet", 22, (32, 32, 3), 10, growth_rate=5)
    dense_layers = [
        layer for layer in small.layers if re.fullmatch(r"block\d_layer\d+_conv", layer.name)
    ]
    assert len(dense_layers) == 18  # 3 blocks of 6 layers
    assert small.get_layer("pool").output.shape[-1] == 16 + 18 * 5


@pytest.mark.parametrize(
    "family, depth, allowed",
    [("resnet", 21, "6n+2"), ("vgg", 4, "6n+2"), ("densenet", 41, "3m+4"), ("dense", 0, ">= 1")],
)
def test_impossible_depth_names_the_allowed_values(family, depth, allowed):
    with pytest.raises(ValueError, match=re.escape(allowed)):
        build_model(family, depth, (32, 32, 3), 10)


def test_unknown_family_and_option_name_the_allowed_values():
    with pytest.raises(ValueError, match="resnet.*densenet"):
        build_model("transformer", 3, (28, 28, 1), 10)
    with pytest.raises(ValueError, match="allowed options: \\['width'\\]"):
        build_model("dense", 3, (28, 28, 1), 10, growth_rate=4)
    with pytest.raises(ValueError, match="projection"):
        build_model("resnet", 8, (8, 8, 3), 10, shortcut="dense")


def test_highway_layer_computes_the_gated_sum_and_starts_near_identity():
    layer = Highway(name="hw")
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    y = layer(x).numpy()
    np.testing.assert_allclose(layer.bias_t.numpy(), -3.0)
    w_h, b_h, w_t, b_t = (
        v.numpy() for v in (layer.kernel_h, layer.bias_h, layer.kernel_t, layer.bias_t)
    )
    t = 1 / (1 + np.exp(-(x @ w_t + b_t)))
    expected = t * np.maximum(x @ w_h + b_h, 0) + (1 - t) * x
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_custom_layers_survive_a_keras_save_and_load(tmp_path):
    for family, options in (("highway", TINY["highway"]), ("resnet", TINY["resnet"])):
        model = build_model(family, num_classes=5, **options)
        x = np.random.default_rng(2).random((2, *options["input_shape"]), dtype=np.float32)
        path = tmp_path / f"{family}.keras"
        model.save(path)
        restored = keras.saving.load_model(path)
        np.testing.assert_allclose(
            restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5
        )


def test_padding_shortcut_subsamples_and_zero_pads_channels():
    x = np.arange(2 * 4 * 4 * 2, dtype=np.float32).reshape(2, 4, 4, 2)
    y = PaddingShortcut(6, 2)(x).numpy()
    assert y.shape == (2, 2, 2, 6)
    np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    assert not y[..., :2].any() and not y[..., 4:].any()


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("family", ["highway", "resnet", "densenet"])
def test_mixed_precision_computes_in_float16_with_float32_logits(mixed_precision, family):
    model = build_model(family, num_classes=5, **TINY[family])
    x = np.random.default_rng(3).random((2, *model.input_shape[1:]), dtype=np.float32)
    logits = model(x)
    assert logits.dtype == "float32"
    assert np.isfinite(logits.numpy()).all()
    hidden = model.layers[2]
    assert hidden.compute_dtype == "float16" and hidden.variable_dtype == "float32"


def test_builds_and_trains_under_a_two_replica_mirrored_strategy(two_cpu_strategy):
    strategy = two_cpu_strategy
    devices = strategy.extended.worker_devices
    with strategy.scope():
        model = build_model("resnet", 8, (8, 8, 3), 5)
        loss, before, after = _compile_and_step(model, batch=8)
    assert strategy.num_replicas_in_sync == len(devices) >= 2
    assert np.isfinite(loss)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
