"""The study's log: while `harness run` runs, the libraries' standard error goes to a file.

`study_log(dir)` sends everything written to the process' standard error, by Python (Ray's,
Tune's and MLflow's loggers, warnings, tracebacks Tune logs and survives) or by the C++ parts of
TensorFlow and Ray, to the study's log file `LOG_NAME` in the study's folder for as long as the
study runs (on s3:// or gs:// storage: appended there when the run ends). The console keeps the
progress lines (stdout) and the harness' messages. With `--verbose` it leaves standard error be.
What happens before the study starts is quieted by `harness.console.quiet_start`.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from harness.console import stderr_to

LOG_NAME = "harness.log"


def _append_to_uri(local: Path, uri: str) -> None:
    """Append the file `local` to `uri` (s3://, gs://, file://: whatever pyarrow reaches)."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    before = b""
    if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
        with fs.open_input_stream(path) as stream:
            before = stream.read()
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(before + local.read_bytes())


@contextlib.contextmanager
def study_log(experiment_dir: str, verbose: bool):
    """Standard error into the study's log file `experiment_dir/LOG_NAME` while the block runs
    (not with `verbose`). Yields where to read it: the file itself, or for remote storage its
    URI (the session writes a local file first and appends it there when the block ends);
    None with `verbose`."""
    if verbose:
        yield None
        return
    if "://" not in experiment_dir:
        Path(experiment_dir).mkdir(parents=True, exist_ok=True)
        with stderr_to(Path(experiment_dir) / LOG_NAME) as path:
            yield path
        return
    uri = f"{experiment_dir.rstrip('/')}/{LOG_NAME}"
    with tempfile.TemporaryDirectory(prefix="harness-") as directory:
        local = Path(directory) / LOG_NAME
        try:
            with stderr_to(local):
                yield uri
        finally:
            _append_to_uri(local, uri)
