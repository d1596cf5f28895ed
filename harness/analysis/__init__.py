"""Analysis of a study: does Langevin help, from which depth on, and how sure are we.

`load` (MLflow → tidy frames, arms keyed by every differing hyperparameter) → `aggregate` (per arm
over seeds) → `paired` (Langevin − baseline, seed by seed) → `depth` (gain vs depth, one slope
per seed) and `curves` (over epochs) → `tables`, `plots`, `report`; `cli` is `harness analyze`.
`metrics` says which direction of a metric is better and what a diverged run scores; `intervals`
holds every confidence interval with its minimum n. A tuned study adds `tuned`: `choice` (chosen
config, range edges), `budget` (expected best vs tuning budget, opda), `success` (success
rates and accuracy given success on the final seeds), `success_trend` (logistic depth trend of
success), `controls` (the matched-learning-rate 2 × 2) and, with a declared decision, `verdict`
(the declared tests replayed from the runs: the only primary result). `cost` gives each
phase's wall time and trial time from the runs' start and end times. `export` writes a study's
runs, epochs and design as files and reads them back (`harness analyze --from DIR`: the numbers
without MLflow); `pool` joins several such studies that ran other depths into one secondary
analysis.
"""
