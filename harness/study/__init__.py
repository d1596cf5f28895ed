"""The study runner: search-space files -> Ray Tune trials -> MLflow runs.

Rooms, each with one job (arrows point down: `harness.cli` and `harness.analysis` use this
package; it uses `harness.models`, `harness.data` and `harness.optimizers`):

- `space`: the study file's schema, validation and grid expansion;
- `run_schema`: the names every trial records (tags, params, metrics, statuses);
- `trial`: the Tune trainable (one training run, checkpoints, resume);
- `runner`: the Tuner, resources, resume of a whole study;
- `tracking`, `tracking_uri`: the MLflow recorder (a Tune callback in the driver);
- `progress`: one console line per trial event;
- `cli`: the `harness run` command.
"""
