"""The study runner: search-space files -> Ray Tune trials -> MLflow runs.

Rooms, each with one job (arrows point down: `harness.cli` and `harness.analysis` use this
package; it uses `harness.models`, `harness.data` and `harness.optimizers`):

- `space`: the study file's schema, validation and grid expansion;
- `limits`: what a file may ask of the machine (sizes, counts, names), checked before anything
  is built;
- `tuning`: the fair-comparison protocol (equal budget per arm, twins, selection, finals);
- `run_schema`: the names every trial records (tags, params, metrics, statuses);
- `devices`: the GPUs (or GPU share) a trial trains on;
- `trial`: the Tune trainable (one training run, checkpoints, resume);
- `runner`: the Tuner(s), resources, resume of a whole study (both phases of a tuned one);
- `tracking`, `tracking_uri`: the MLflow recorder (a Tune callback in the driver), arm runs;
- `progress`, `console`: the progress line, a quiet console and the study's log file;
- `cli`: the `harness run` command.
"""
