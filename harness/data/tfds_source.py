"""The tensorflow-datasets side: official file names, a fast "not prepared" check, reading splits.

This harness never lets tfds download implicitly: offline, `tfds.load` retries for minutes before
it fails. Reading checks `builder.is_prepared()` first and fails at once with the files to fetch
and the `harness data prepare` command that turns them into the tfds format.
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError

_READ_BATCH = 4096


def official_files(name: str) -> dict[str, str]:
    """{url: file name} of the archives tfds builds `name` from (its recorded checksums)."""
    import tensorflow_datasets as tfds

    return {url: info.filename for url, info in (tfds.builder_cls(name).url_infos or {}).items()}


def not_prepared_message(name: str, data_dir_root) -> str:
    files = official_files(name)
    return (
        f"dataset {name!r} is not prepared in {data_dir_root} (tfds data_dir) and is never "
        f"downloaded implicitly: put the official files {', '.join(sorted(files.values()))} "
        f"(from {', '.join(sorted(files))}) in a directory DIR and run "
        f"`harness data prepare {name} --from DIR --data-dir {data_dir_root}`"
    )


def builder(name: str, data_dir=None):
    """The tfds builder of `name` in `data_dir` (None: tfds' default, which honours
    TFDS_DATA_DIR)."""
    import tensorflow_datasets as tfds

    return tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))


def read_arrays(
    name: str, data_dir=None, limit: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images, labels), "test": (images, labels)}: decoded uint8 images and int64
    labels of the tfds splits; `limit` keeps the first `limit` examples of each split (tfds
    slicing `train[:N]`, so only those are read)."""
    import tensorflow_datasets as tfds

    dataset_builder = builder(name, data_dir)
    if not dataset_builder.is_prepared():
        raise HarnessError(not_prepared_message(name, dataset_builder.data_dir_root))
    arrays = {}
    for split in ("train", "test"):
        spec = split if limit is None else f"{split}[:{int(limit)}]"
        ds = dataset_builder.as_dataset(split=spec, as_supervised=True).batch(_READ_BATCH)
        images, labels = zip(*tfds.as_numpy(ds), strict=True)
        arrays[split] = (
            np.concatenate(images).astype(np.uint8),
            np.concatenate(labels).astype(np.int64),
        )
    return arrays
