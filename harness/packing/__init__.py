"""Packed trials (issue 15): K small trials of one architecture trained as one model.

Every weight gets a leading member axis K; member k has its own initialisation (its unpacked
model's, built under its own seed), its own batches (its own data order) and its own learning
rate, σ and noise seed (`harness.optimizers`: a packed optimizer). One step function then trains
all K: one batched matmul per layer instead of K small ones.

- `model.py`: the packed layers and `build_packed` (dense family), `load_members`.
- `train.py`: `PackedTrainer`, per-member losses and accuracies, divergence masking;
  `zip_members`, the member batches side by side.
"""
