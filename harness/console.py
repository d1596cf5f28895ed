"""A quiet console: the harness' own lines for the user, the libraries' start-up noise held back.

Without `--verbose`:
- `with quiet_start():` sets what TensorFlow, Ray Tune and MLflow read when they start (no
  TensorFlow C++ INFO/WARNING lines, no Tune configuration box or TensorBoard hint: Tune's legacy
  reporter at verbosity 0 prints nothing); inside it standard error is held back and at its end
  TensorFlow is imported with its C++ start-up lines (oneDNN, CUDA probing) held too; a
  `HarnessError` leaves at once (its one line is what the command prints), any other failure
  shows what was held;
- `stderr_to(path)` points the process' standard error, Python's and the C++ parts', at a file.

With `--verbose` everything is left as the libraries print it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

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
def quiet_start(verbose: bool, import_tensorflow: bool = True):
    """Around what runs before a command's own work (a study's start, a dataset's preparation):
    the quiet settings, standard error held back inside, and TensorFlow imported at the end
    (unless `import_tensorflow` is false: a command that will not train). What was held is shown if the block fails with
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
                if import_tensorflow:
                    import tensorflow  # noqa: F401
        except HarnessError:
            raise
        except BaseException:
            sys.stderr.write(held.read())
            raise
