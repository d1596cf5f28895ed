"""The training order a trial sees (`open_splits(...).train(epoch)`, the path `train_trial` uses)
is set by the trial's seed and the epoch: another seed, another order; the same seed, the same
order; every epoch its own order.

The training split is used whole (`validation_size=0`), so every seed trains on the same examples
and only their order can differ: a shuffle that ignored the seed would show here, where a seeded
validation carve would otherwise make two seeds' training splits differ anyway.
"""

from __future__ import annotations

from harness.data import open_splits

SMALL = dict(shape=(8, 8, 1), num_classes=4, train_size=96, test_size=8)


def whole_train(seed: int, augment: bool = False):
    return open_splits("synthetic", 16, seed, validation_size=0, augment=augment, **SMALL)


def order(splits, epoch: int) -> list[bytes]:
    """The epoch's training examples in the order trained on, each as its pixels and label."""
    return [x.tobytes() + int(y).to_bytes(8, "little")
            for images, labels in splits.train(epoch)
            for x, y in zip(images.numpy(), labels.numpy())]


def test_two_seeds_train_on_the_same_examples_in_different_orders():
    one, two = whole_train(1), whole_train(2)
    assert one.num_train == two.num_train == SMALL["train_size"]
    for epoch in (1, 2):
        assert order(one, epoch) != order(two, epoch)
        assert sorted(order(one, epoch)) == sorted(order(two, epoch))


def test_the_same_seed_gives_the_same_order_in_a_rebuilt_pipeline():
    first, again = whole_train(1), whole_train(1)
    for epoch in (1, 2, 7):
        assert order(first, epoch) == order(again, epoch) == order(first, epoch)


def test_every_epoch_has_its_own_order_of_the_same_examples():
    splits = whole_train(1)
    orders = [order(splits, epoch) for epoch in (1, 2, 3)]
    assert len({tuple(o) for o in orders}) == 3
    assert all(sorted(o) == sorted(orders[0]) for o in orders)


def test_augmented_epochs_repeat_with_the_seed_and_differ_between_seeds_and_epochs():
    first, again, other = whole_train(1, True), whole_train(1, True), whole_train(2, True)
    assert order(first, 1) == order(again, 1)
    assert order(first, 1) != order(other, 1)
    # new crops and flips each epoch, not only a new order
    assert sorted(order(first, 1)) != sorted(order(first, 2))
