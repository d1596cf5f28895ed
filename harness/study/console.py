"""A quiet console for `harness run`: the harness' own lines on stdout, the libraries' in a log.

Without `--verbose`:
- `with quiet_start():` sets what TensorFlow, Ray Tune and MLflow read when they start (no Tune
  configuration box or TensorBoard hint: Tune's legacy reporter at verbosity 0 prints nothing);
  inside it (loading and checking the study file) and at its end TensorFlow is imported with
  its C++ start-up lines (oneDNN, CUDA probing) held back; a refused file (`HarnessError`)
  leaves at once, without importing TensorFlow if its checks had not;
- `study_log(dir)` sends everything written to the process' standard error, by Python (Ray's,
  Tune's and MLflow's loggers, warnings, tracebacks Tune logs and survives) or by the C++ parts
  of TensorFlow and Ray, to the study's log file `LOG_NAME` in the study's folder for as long as
  the study runs (on s3:// or gs:// storage: appended there when the run ends). The console
  keeps the progress lines (stdout) and the harness' messages.

With `--verbose` both leave everything as the libraries print it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

LOG_NAME = "harness.log"

QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ INFO/WARNING lines
    "RAY_AIR_NEW_OUTPUT": "0",  # Tune's new engine prints its box and hint at any verbosity
}


@contextlib.contextmanager
def stderr_to(path: Path):
    """Point file descriptor 2 (and so sys.stderr, C and C++ code, child processes) at
    `path`, appending, inside the block; restore it after. A file deleted meanwhile (e.g. by
    `--restart` clearing the study's folder) is written again at `path` when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a+b") as target:
        os.dup2(target.fileno(), 2)
        try:
            yield path
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if os.fstat(target.fileno()).st_nlink == 0:
                target.seek(0)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(target.read())


@contextlib.contextmanager
def quiet_start(verbose: bool):
    """Around what runs before a study starts: the quiet settings, standard error held back
    inside, and TensorFlow imported at the end. What was held is shown if the block fails with
    anything but a `HarnessError` (whose one line the command prints)."""
    from harness.errors import HarnessError

    if verbose:
        yield
        return
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    with tempfile.NamedTemporaryFile("r", suffix=".log") as held:
        try:
            with stderr_to(Path(held.name)):
                yield
                import tensorflow  # noqa: F401
        except HarnessError:
            raise
        except BaseException:
            sys.stderr.write(held.read())
            raise


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
