"""Datasets: synthetic data, splits, determinism, augmentation, the tfds path and offline prepare.

No test reads real dataset files. The tfds path runs twice: under `tfds.testing.mock_data` (fake
examples from the builders' feature specs) and for real on tiny archives that the tests write in
the official formats (MNIST idx.gz, CIFAR-10 binary tar.gz) and prepare through tfds' own
`manual_dir` code. tfds checks each archive's size and sha256 against the official ones it
records, and builds MNIST with a fixed 60000/10000 example count; the tiny-archive tests therefore
register the tiny files' own checksums and example counts on the builder (monkeypatched for the
test), while `test_prepare_rejects_files_that_are_not_the_official_ones` exercises the check
against the real recorded checksums.
"""

import gzip
import io
import struct
import sys
import tarfile
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import checksums

from harness.data import DATASETS, dataset_info, load_dataset, load_splits, prepare
from harness.data.cli import add_parser
from harness.data.pipeline import _augment, carve_validation
from harness.data.synthetic import make_arrays
from harness.errors import HarnessError

SMALL = dict(shape=(8, 8, 3), num_classes=4, train_size=120, test_size=40)


def _pixels(ds):
    """(uint8 images, labels) of a whole pipeline, concatenated in order."""
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.rint(np.concatenate(images) * 255).astype(np.uint8), np.concatenate(labels)


def _as_multiset(images, labels):
    return sorted((int(y), x.tobytes()) for x, y in zip(images, labels, strict=True))


# ---------------------------------------------------------------- catalog and synthetic data


def test_dataset_info_gives_the_official_shapes_and_sizes():
    assert DATASETS == ("mnist", "fashion_mnist", "cifar10", "cifar100", "synthetic")
    cifar100 = dataset_info("cifar100")
    assert (cifar100.input_shape, cifar100.num_classes, cifar100.train_size) == (
        (32, 32, 3),
        100,
        50000,
    )
    assert dataset_info("mnist").input_shape == (28, 28, 1)
    synthetic = dataset_info("synthetic", **SMALL)
    assert (synthetic.input_shape, synthetic.num_classes, synthetic.test_size) == ((8, 8, 3), 4, 40)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: dataset_info("imagenet"), "mnist, fashion_mnist, cifar10"),
        (lambda: dataset_info("mnist", shape=(8, 8, 1)), "synthetic dataset only"),
        (lambda: dataset_info("synthetic", colour=True), "allowed"),
        (lambda: load_dataset("synthetic", "dev", 8, 0), "train, validation, test"),
        (lambda: load_dataset("synthetic", "train", 0, 0), "batch_size"),
        (
            lambda: load_dataset("synthetic", "train", 8, 0, validation_size=500, **SMALL),
            "validation_size",
        ),
    ],
)
def test_bad_requests_raise_a_harness_error(call, match):
    with pytest.raises(HarnessError, match=match):
        call()


def test_synthetic_batches_have_the_requested_shape_dtype_and_sizes():
    train, validation, test = load_splits("synthetic", 32, seed=0, validation_size=20, **SMALL)
    x, y = next(iter(train))
    assert x.shape == (32, 8, 8, 3) and x.dtype == tf.float32 and y.dtype == tf.int64
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    sizes = [len(_pixels(ds)[1]) for ds in (train, validation, test)]
    assert sizes == [100, 20, 40]


def test_synthetic_images_are_fixed_and_balanced():
    first, second = (
        make_arrays(dataset_info("synthetic", **SMALL)),
        make_arrays(dataset_info("synthetic", **SMALL)),
    )
    np.testing.assert_array_equal(first["train"][0], second["train"][0])
    assert np.bincount(first["train"][1]).tolist() == [30, 30, 30, 30]
    assert not np.array_equal(first["train"][0][:40], first["test"][0])


def test_synthetic_labels_are_learnable_by_a_small_dense_net():
    from harness.models import build_model

    keras = tf.keras
    keras.utils.set_random_seed(0)
    options = dict(shape=(28, 28, 1), num_classes=10, train_size=2000, test_size=500)
    train, _, test = load_splits("synthetic", 64, seed=0, **options)
    model = build_model("dense", 2, (28, 28, 1), 10)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(train, epochs=2, verbose=0)
    _, accuracy = model.evaluate(test, verbose=0)
    assert accuracy > 0.5  # chance is 0.1


# ---------------------------------------------------------------- splits and determinism


def test_validation_is_carved_from_train_without_overlap_and_fixed_by_seed():
    train_idx, val_idx = carve_validation(100, 25, seed=3)
    assert len(val_idx) == 25 and len(train_idx) == 75
    assert not set(train_idx) & set(val_idx) and set(train_idx) | set(val_idx) == set(range(100))
    np.testing.assert_array_equal(carve_validation(100, 25, seed=3)[1], val_idx)
    assert not np.array_equal(carve_validation(100, 25, seed=4)[1], val_idx)

    train, validation, _ = load_splits(
        "synthetic", 16, seed=3, validation_size=30, augment=False, **SMALL
    )
    train_set = set(_as_multiset(*_pixels(train)))
    validation_set = set(_as_multiset(*_pixels(validation)))
    assert len(train_set) == 90 and len(validation_set) == 30
    assert not train_set & validation_set
    source = make_arrays(dataset_info("synthetic", **SMALL))["train"]
    assert train_set | validation_set == set(_as_multiset(*source))


def _two_epochs(seed, augment=True):
    train = load_dataset("synthetic", "train", 16, seed, augment=augment, **SMALL)
    return [_pixels(train) for _ in range(2)]


def test_training_order_and_augmentation_repeat_with_the_seed_and_change_each_epoch():
    first, again = _two_epochs(seed=5), _two_epochs(seed=5)
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    (epoch1_x, epoch1_y), (epoch2_x, epoch2_y) = first
    assert not np.array_equal(epoch1_y, epoch2_y)  # reshuffled
    assert _as_multiset(epoch1_x, epoch1_y) != _as_multiset(epoch2_x, epoch2_y)  # re-augmented
    unaugmented = _two_epochs(seed=5, augment=False)
    assert _as_multiset(*unaugmented[0]) == _as_multiset(*unaugmented[1])
    other_x, _ = _two_epochs(seed=6)[0]
    assert not np.array_equal(epoch1_x, other_x)


def test_evaluation_splits_are_neither_shuffled_nor_augmented():
    _, validation, test = load_splits(
        "synthetic", 16, seed=1, validation_size=20, augment=True, **SMALL
    )
    source = make_arrays(dataset_info("synthetic", **SMALL))
    _, val_idx = carve_validation(SMALL["train_size"], 20, seed=1)
    images, labels = _pixels(validation)
    np.testing.assert_array_equal(images, source["train"][0][val_idx])
    np.testing.assert_array_equal(labels, source["train"][1][val_idx])
    np.testing.assert_array_equal(_pixels(test)[0], source["test"][0])


def test_augmentation_is_a_padded_crop_with_optional_flip():
    image = np.arange(32 * 32 * 3, dtype=np.int32).reshape(32, 32, 3) % 251 + 1
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    crops = {}
    for dy in range(9):
        for dx in range(9):
            crop = padded[dy : dy + 32, dx : dx + 32, :]
            crops[(dy, dx, False)], crops[(dy, dx, True)] = crop, crop[:, ::-1]
    batch = tf.constant(np.stack([image] * 64), tf.uint8)
    key = tf.constant([[1, 2], [3, 4]], tf.int64)
    out = _augment(batch, key).numpy()
    assert out.shape == (64, 32, 32, 3) and out.dtype == np.uint8
    seen = set()
    for augmented in out:
        match = [k for k, crop in crops.items() if np.array_equal(augmented, crop)]
        assert len(match) == 1
        seen.add(match[0])
    assert len({k[:2] for k in seen}) > 10 and {k[2] for k in seen} == {False, True}
    np.testing.assert_array_equal(_augment(batch, key).numpy(), out)
    assert not np.array_equal(_augment(batch, key + 1).numpy(), out)


def test_a_two_replica_strategy_splits_each_global_batch(two_cpu_strategy):
    strategy = two_cpu_strategy
    devices = strategy.extended.worker_devices
    train = load_dataset("synthetic", "train", 16, seed=0, augment=True, **SMALL)
    batch, _ = next(iter(strategy.experimental_distribute_dataset(train)))
    shapes = [x.shape for x in strategy.experimental_local_results(batch)]
    assert len(shapes) == len(devices) >= 2
    assert all(shape == (16 // len(devices), 8, 8, 3) for shape in shapes)


def test_standardize_uses_the_training_statistics():
    train = load_dataset("synthetic", "train", 50, seed=0, standardize=True, augment=False, **SMALL)
    pixels = np.concatenate([x.numpy() for x, _ in train]).reshape(-1, 3)
    np.testing.assert_allclose(pixels.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(pixels.std(axis=0), 1.0, atol=1e-3)


def test_limit_caps_the_source_splits_before_carving():
    train, validation, test = load_splits("synthetic", 8, seed=0, limit=50, **SMALL)
    assert [len(_pixels(ds)[1]) for ds in (train, validation, test)] == [45, 5, 40]


# ---------------------------------------------------------------- the tfds path


@pytest.fixture
def mock_tfds(monkeypatch):
    """tfds' fake data; mock_data leaves `is_prepared` False, so mark the mock as prepared."""
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=40):
        yield


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_datasets_load_through_tfds(mock_tfds, name, shape):
    train, validation, test = load_splits(name, 8, seed=0, validation_size=10)
    x, y = next(iter(train))
    assert x.shape == (8, *shape) and x.dtype == tf.float32 and y.dtype == tf.int64
    assert [len(_pixels(ds)[1]) for ds in (train, validation, test)] == [30, 10, 40]


def test_an_unprepared_dataset_fails_within_seconds_naming_files_and_command(tmp_path):
    start = time.monotonic()
    with pytest.raises(HarnessError) as error:
        load_dataset("mnist", "train", 32, seed=0, data_dir=tmp_path)
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert f"harness data prepare mnist --from DIR --data-dir {tmp_path}" in message


# ---------------------------------------------------------------- offline prepare


def _write_mnist(directory, images, labels):
    """Official MNIST layout: gzip'd idx3 (magic 2051) images and idx1 (magic 2049) labels."""
    for prefix, split in (("train", "train"), ("t10k", "test")):
        x, y = images[split], labels[split]
        with gzip.open(directory / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, len(x), 28, 28) + x.tobytes())
        with gzip.open(directory / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, len(y)) + y.astype(np.uint8).tobytes())


def _register_tiny_archives(monkeypatch, name, directory):
    """Make tfds expect these archives' size and sha256 instead of the official ones."""
    builder_cls = tfds.builder_cls(name)
    infos = {
        url: checksums.compute_url_info(directory / info.filename)
        for url, info in builder_cls.url_infos.items()
    }
    monkeypatch.setattr(builder_cls, "url_infos", infos)
    return sys.modules[builder_cls.__module__]


def _random_split(rng, sizes, shape, num_classes):
    images = {s: rng.integers(0, 256, (n, *shape), dtype=np.uint8) for s, n in sizes.items()}
    labels = {s: rng.integers(0, num_classes, n) for s, n in sizes.items()}
    return images, labels


def test_prepare_builds_mnist_from_idx_archives(tmp_path, monkeypatch):
    archives, data_dir = tmp_path / "archives", tmp_path / "tfds"
    archives.mkdir()
    images, labels = _random_split(
        np.random.default_rng(0), {"train": 30, "test": 12}, (28, 28), 10
    )
    _write_mnist(archives, images, labels)
    mnist_module = _register_tiny_archives(monkeypatch, "mnist", archives)
    monkeypatch.setattr(mnist_module, "_TRAIN_EXAMPLES", 30)
    monkeypatch.setattr(mnist_module, "_TEST_EXAMPLES", 12)

    path = prepare("mnist", archives, data_dir=data_dir)
    assert path.is_relative_to(data_dir) and (path / "dataset_info.json").is_file()

    train, validation, test = load_splits("mnist", 8, seed=0, validation_size=6, data_dir=data_dir)
    got_train = _as_multiset(*_pixels(train)) + _as_multiset(*_pixels(validation))
    assert sorted(got_train) == _as_multiset(images["train"][..., None], labels["train"])
    assert _as_multiset(*_pixels(test)) == _as_multiset(images["test"][..., None], labels["test"])


def _write_cifar10_binary(directory, images, labels):
    """Official CIFAR-10 binary layout: per record 1 label byte + 3072 channel-major bytes."""

    def records(x, y):
        return b"".join(
            bytes([int(c)]) + img.transpose(2, 0, 1).tobytes() for img, c in zip(x, y, strict=True)
        )

    members = {"batches.meta.txt": "\n".join(f"class_{i}" for i in range(10)).encode() + b"\n"}
    train_parts = np.array_split(np.arange(len(labels["train"])), 5)
    for i, part in enumerate(train_parts, start=1):
        members[f"data_batch_{i}.bin"] = records(images["train"][part], labels["train"][part])
    members["test_batch.bin"] = records(images["test"], labels["test"])
    with tarfile.open(directory / "cifar-10-binary.tar.gz", "w:gz") as tar:
        for member, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{member}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_cli_prepare_builds_cifar10_from_the_binary_archive(tmp_path, monkeypatch, capfd):
    """Prints its own two lines; tfds' ("Downloading and preparing ..." even from local files)
    and any library's standard error stay held."""
    import argparse

    archives, data_dir = tmp_path / "archives", tmp_path / "tfds"
    archives.mkdir()
    images, labels = _random_split(
        np.random.default_rng(1), {"train": 20, "test": 8}, (32, 32, 3), 10
    )
    _write_cifar10_binary(archives, images, labels)
    _register_tiny_archives(monkeypatch, "cifar10", archives)

    parser = argparse.ArgumentParser(prog="harness")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["data", "prepare", "cifar10", "--from", str(archives), "--data-dir", str(data_dir)]
    )
    assert args.func(args) == 0
    out, err = capfd.readouterr()
    assert out.splitlines() == [
        f"preparing cifar10 from the official archives in {archives} (sizes and sha256 checked)",
        f"cifar10 prepared in {data_dir / 'cifar10' / '3.0.2'}"], out
    assert err == ""

    train, _, test = load_splits(
        "cifar10", 4, seed=0, validation_size=0, augment=False, data_dir=data_dir
    )
    assert _as_multiset(*_pixels(train)) == _as_multiset(images["train"], labels["train"])
    assert _as_multiset(*_pixels(test)) == _as_multiset(images["test"], labels["test"])


def test_prepare_rejects_missing_and_unofficial_files(tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    with pytest.raises(HarnessError, match="lacks cifar-10-binary.tar.gz"):
        prepare("cifar10", archives, data_dir=tmp_path / "tfds")
    images, labels = _random_split(np.random.default_rng(2), {"train": 3, "test": 2}, (28, 28), 10)
    _write_mnist(archives, images, labels)
    with pytest.raises(HarnessError, match="not the official one"):
        prepare("mnist", archives, data_dir=tmp_path / "tfds")
    with pytest.raises(HarnessError, match="no such directory"):
        prepare("mnist", tmp_path / "nowhere", data_dir=tmp_path / "tfds")


def test_open_splits_rebuilds_any_epoch_on_its_own():
    """A trial resumed at epoch e must see exactly the batches an uninterrupted one would."""
    from harness.data import open_splits

    def labels(dataset):
        return np.concatenate([y.numpy() for _, y in dataset])

    first = open_splits("synthetic", 16, seed=3, validation_size=20, **SMALL)
    again = open_splits("synthetic", 16, seed=3, validation_size=20, **SMALL)
    np.testing.assert_array_equal(labels(first.train(3)), labels(again.train(3)))
    np.testing.assert_array_equal(labels(first.train(3)), labels(first.train(3)))
    assert not np.array_equal(labels(first.train(3)), labels(first.train(4)))
    assert first.steps_per_epoch == -(-first.num_train // 16)
    assert sorted(labels(first.train(3))) == sorted(labels(first.train(4)))  # same examples


def test_a_boolean_batch_size_is_refused_not_read_as_one():
    from harness.data import open_splits

    with pytest.raises(HarnessError, match="batch_size"):
        open_splits("synthetic", True, seed=0, **SMALL)


def test_load_dataset_gives_each_split_by_name():
    _, validation, test = load_splits("synthetic", 16, seed=2, validation_size=20, **SMALL)
    for split, expected in (("validation", validation), ("test", test)):
        np.testing.assert_array_equal(
            _pixels(load_dataset("synthetic", split, 16, seed=2, validation_size=20, **SMALL))[1],
            _pixels(expected)[1])
    with pytest.raises(HarnessError, match="no validation split"):
        load_dataset("synthetic", "validation", 16, seed=2, validation_size=0, **SMALL)
