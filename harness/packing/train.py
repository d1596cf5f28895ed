"""Training and evaluating a packed model: one step for all members, metrics per member.

Member k's loss is its own mean cross-entropy over its batch, L_k = mean_b CE(y[b,k], z[b,k]).
A step descends on Σ_k a_k L_k (a_k = 0 for a member that has diverged, else 1): members share
no weight, so the gradient for member k's weights is ∂L_k/∂θ_k, exactly its unpacked gradient,
and a NaN in one member never reaches another. The epoch's loss and accuracy of member k are
means over its examples (Keras' `fit` reports the same: batch losses weighted by batch size).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def zip_members(datasets: list[tf.data.Dataset]) -> tf.data.Dataset:
    """Member datasets of (x [B, ...], y [B]) → one of (x [B, K, ...], y [B, K]), batch by batch."""
    def stack(*pairs):
        return (tf.stack([x for x, _ in pairs], axis=1), tf.stack([y for _, y in pairs], axis=1))

    return tf.data.Dataset.zip(tuple(datasets)).map(stack, num_parallel_calls=tf.data.AUTOTUNE,
                                                    deterministic=True).prefetch(tf.data.AUTOTUNE)


class PackedTrainer:
    """Per-member training of a packed model with an optimizer built for it (K members)."""

    def __init__(self, model, optimizer, *, jit_compile: bool = False):
        self.model, self.optimizer = model, optimizer
        self.members = model.output_shape[1]
        self.alive = tf.Variable(tf.ones([self.members], tf.bool), trainable=False)
        optimizer.build(model.trainable_variables)
        # one trace for every batch size (a split's last batch is smaller): no retracing
        self._train = tf.function(self._train_step, jit_compile=jit_compile, reduce_retracing=True)
        self._evaluate = tf.function(self._evaluate_step, jit_compile=jit_compile,
                                     reduce_retracing=True)

    def _sums(self, x, y, training: bool):
        logits = self.model(x, training=training)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(y, tf.int32), logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1), tf.cast(y, tf.int64)), tf.float32)
        return losses, correct  # [B, K] each

    def _train_step(self, x, y):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            losses, correct = self._sums(x, y, training=True)
            member_losses = tf.reduce_mean(losses, axis=0)
            total = tf.reduce_sum(tf.where(self.alive, member_losses, 0.0))
        self.optimizer.apply(tape.gradient(total, variables), variables)
        return tf.reduce_sum(losses, axis=0), tf.reduce_sum(correct, axis=0)

    def _evaluate_step(self, x, y):
        losses, correct = self._sums(x, y, training=False)
        return tf.reduce_sum(losses, axis=0), tf.reduce_sum(correct, axis=0)

    @staticmethod
    def _epoch(step, dataset) -> tuple[np.ndarray, np.ndarray]:
        loss = correct = 0.0
        count = 0
        for x, y in dataset:
            batch_loss, batch_correct = step(x, y)
            loss, correct = loss + batch_loss.numpy().astype(np.float64), \
                correct + batch_correct.numpy().astype(np.float64)
            count += int(y.shape[0])
        return loss / count, correct / count

    def fit_epoch(self, dataset) -> tuple[np.ndarray, np.ndarray]:
        """One pass over `dataset` (from `zip_members`): (mean loss [K], accuracy [K])."""
        return self._epoch(self._train, dataset)

    def evaluate(self, dataset) -> tuple[np.ndarray, np.ndarray]:
        """(mean loss [K], accuracy [K]) of every member on its column of `dataset`."""
        return self._epoch(self._evaluate, dataset)

    def drop(self, member: int) -> None:
        """Mask member `member` out of the loss from now on (it diverged)."""
        self.alive[member].assign(False)
