"""Packed trials: K small trials of one architecture trained as one model.

Every weight gets a leading member axis K; member k has its own initialisation (its unpacked
model's, built under its own seed), its own batches (its own data order) and its own learning
rate, σ and noise seed (`harness.optimizers`: a packed optimizer). One step function then trains
all K: one batched matmul or grouped convolution per layer instead of K small ones.

- `layers.py`: the packed layers (dense, highway, convolution, flatten) and their two layouts.
- `model.py`: `pack_model`, a packed model from an unpacked one layer by layer; `build_packed`
  for the packable families; `load_members`.
- `step_mode.py`: `xla_compiles`, whether a pack's step is XLA-compiled (by measured times).
- `train.py`: `PackedTrainer`, per-member losses and accuracies, divergence masking;
  `zip_members`, the member batches side by side.
"""

PACKABLE_FAMILIES = ("dense", "conv_dense", "highway")
# why the other families stay one model per trial: no packed layer computes them exactly
NOT_PACKABLE = {
    "resnet": "its BatchNormalization layers and shortcut additions have no packed layer",
    "densenet": "its BatchNormalization layers and concatenations have no packed layer",
    "vgg": "its BatchNormalization layers have no packed layer",
}
