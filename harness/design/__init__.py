"""The design of a decision: declared tests, their power, looks and the family's verdict.

Shared by `harness.study` (the dry run's power, the stop after each look) and
`harness.analysis` (the verdict from the declared tests), below both and importing neither:
`declared` (the study file's `decision:` block), `tests` (the declared two-sided tests with
their intervals), `power` (exact power before any data, the seeds a test needs), `sequential`
(Lan-DeMets α-spending boundaries over the looks), `family` (group-sequential Holm over the
declared family: supported / contradicted / undecided, and when to stop).
"""
