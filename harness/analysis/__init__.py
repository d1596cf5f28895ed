"""Analysis of a study: does Langevin help, from which depth on, and how sure are we.

`load` (MLflow → tidy frames) → `aggregate` (per arm over seeds) → `paired` (Langevin − baseline,
seed by seed) → `depth` (gain vs depth) and `curves` (over epochs) → `tables`, `plots`, `report`;
`cli` is `harness analyze`.
"""
