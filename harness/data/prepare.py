"""`prepare`: turn the official archives into tfds' prepared format, offline.

This is tfds' own `manual_dir` mechanism: `DownloadManager` finds each URL's recorded file name in
`from_dir`, checks its size and sha256 against the checksums tfds records for that URL, and the
dataset's own builder code (`_split_generators`/`_generate_examples`) writes the prepared
records. Archives that are not the official ones therefore fail the checksum check.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from harness.data.catalog import check_name
from harness.data.tfds_source import builder, official_files
from harness.errors import HarnessError


def _check_reachable(urls, timeout: float = 3.0) -> None:
    """HarnessError at once when a download host cannot be reached (tfds would retry for
    minutes)."""
    for url in urls:
        parsed = urlparse(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout).close()
        except OSError as exc:
            raise HarnessError(
                f"cannot reach {parsed.hostname} to download ({exc}); fetch the files yourself "
                f"and pass their directory with --from"
            ) from exc


def prepare(name: str, from_dir=None, data_dir=None) -> Path:
    """Prepare tfds dataset `name` in `data_dir` (None: tfds' default) and return its directory.

    With `from_dir`, read the official archives from there (no network); without, let tfds
    download them, after a quick check that their host answers.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    check_name(name)
    if name == "synthetic":
        raise HarnessError("the synthetic dataset is generated on the fly and needs no prepare")
    files = official_files(name)
    if from_dir is None:
        _check_reachable(files)
    else:
        from_dir = Path(from_dir).expanduser().resolve()
        if not from_dir.is_dir():
            raise HarnessError(f"--from {from_dir}: no such directory")
        missing = sorted(f for f in files.values() if not (from_dir / f).is_file())
        if missing:
            raise HarnessError(
                f"{from_dir} lacks {', '.join(missing)} (the official {name} files, from "
                f"{', '.join(sorted(files))})"
            )
    if not sys.stderr.isatty():  # tfds' bars redraw with cursor codes: none in a log file
        tfds.disable_progress_bar()
    dataset_builder = builder(name, data_dir)
    with tempfile.TemporaryDirectory(prefix=f"harness-{name}-extract-") as extract_dir:
        config = tfds.download.DownloadConfig(manual_dir=from_dir, extract_dir=extract_dir)
        try:
            dataset_builder.download_and_prepare(download_config=config)
        except NonMatchingChecksumError as exc:
            raise HarnessError(
                f"{name}: a file in {from_dir} is not the official one (size or sha256 differs "
                f"from what tfds records): {str(exc).splitlines()[0]}"
            ) from exc
    return Path(dataset_builder.data_path)
