"""Mutants of harness.packing.layers that the fast tier let through, each now caught here."""

from __future__ import annotations

import keras
import numpy as np

from harness.packing.layers import PackedDense


def test_a_packed_layer_rebuilt_from_its_config_keeps_members_units_and_activation():
    # a saved packed model is rebuilt from each layer's config: its activation must survive
    rng = np.random.default_rng(0)
    layer = PackedDense(2, 3, activation="relu")
    clone = PackedDense.from_config(layer.get_config())
    assert (clone.members, clone.units) == (2, 3)
    x = rng.normal(size=(4, 2, 5)).astype("float32")  # [batch, members, features]
    kernel = rng.normal(size=(2, 5, 3)).astype("float32")
    bias = rng.normal(size=(2, 3)).astype("float32")
    clone.build(x.shape)
    clone.set_weights([kernel, bias])
    # member k: relu(x[:, k] W[k] + c[k]), by numpy
    expected = np.stack([np.maximum(x[:, k] @ kernel[k] + bias[k], 0) for k in range(2)], axis=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), expected, rtol=1e-5,
                               atol=1e-6)
