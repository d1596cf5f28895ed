"""The declared decision of a study: its primary tests, their family, α, the smallest effect worth
finding and the looks — written in the study file before any data exists.

    decision:
      alpha: 0.05                   # family-wise, two-sided
      correction: holm              # holm (over every hypothesis below) | none
      spending: obrien_fleming      # α-spending over the looks: obrien_fleming | pocock
      looks: [8, 16, 24, 32, 40]    # cumulative final seeds per arm at each look; last = maximum
      secondary_seeds: 16           # final cells no declared test compares stop at this many
                                    # seeds (null: they run every look's seeds)
      decided_cells_stop: false     # true: a cell whose every hypothesis is decided stops too
                                    # (at secondary_seeds, or at once without it)
      success_threshold: null       # a run trained: test accuracy > this (null: chance + 0.10)
      tests:
        - endpoint: success         # success | accuracy | accuracy_trained
          test: fisher              # success: fisher, boschloo, mcnemar; accuracy*: sign_flip
          comparison: tuned         # tuned | noise_at_plain_lr | noise_at_langevin_lr
          depths: [40]
          optimizers: [adam, rmsprop, adadelta]   # base optimizers (default: every pair)
          effect: {baseline_success: 0.625, langevin_success: 1.0}

Every (test entry, depth, Langevin arm of a listed base optimizer) is one **hypothesis**, "no
difference between the Langevin arm and its plain twin" on that endpoint; the family corrected
together is every hypothesis of the block (`correction: holm`), fixed here, never by what one
analysis call happens to hold. A comparison names which two final cells meet:

- `tuned`: each arm at its own chosen setting (the tuned-vs-tuned difference; at different
  learning rates it mixes the noise with the step size);
- `noise_at_plain_lr`: the Langevin arm at its plain twin's learning rate vs the plain arm —
  the noise effect at the plain optimizer's best setting;
- `noise_at_langevin_lr`: the Langevin arm vs the plain optimizer at the Langevin arm's learning
  rate (σ = 0) — the noise effect at the Langevin arm's setting.

The two `noise_at_*` comparisons need the matched-learning-rate controls
(`tuning.matched_lr_controls: true`) or the noise-only mode (`tuning.langevin: noise_only`, where
the twins share the learning rate and all three comparisons are the same).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.design.power import Effect
from harness.design.sequential import SPENDING
from harness.design.tests import ENDPOINT_TESTS

COMPARISONS = ("tuned", "noise_at_plain_lr", "noise_at_langevin_lr")
CORRECTIONS = ("holm", "none")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EffectSpec(_Strict):
    """The smallest effect worth finding, per arm (`power.Effect`; defaults there)."""

    baseline_success: float = Field(ge=0, le=1, description="plain arm's success rate")
    langevin_success: float = Field(ge=0, le=1, description="Langevin arm's success rate")
    accuracy_trained: float = Field(Effect.accuracy_trained, ge=0, le=1)
    accuracy_failed: float = Field(Effect.accuracy_failed, ge=0, le=1)
    accuracy_sd: float = Field(Effect.accuracy_sd, ge=0)
    accuracy_gain: float = Field(Effect.accuracy_gain, ge=-1, le=1)

    def effect(self) -> Effect:
        return Effect(**self.model_dump())


class DeclaredTest(_Strict):
    endpoint: Literal[tuple(ENDPOINT_TESTS)]  # type: ignore[valid-type]
    test: str
    comparison: Literal[COMPARISONS] = "tuned"  # type: ignore[valid-type]
    depths: list[int] = Field(min_length=1)
    optimizers: list[str] | None = Field(None, description="base optimizers; None: every pair")
    variants: list[Literal["langevin", "layer-langevin"]] | None = Field(
        None, description="which Langevin arms; None: every one")
    effect: EffectSpec
    name: str | None = None

    @model_validator(mode="after")
    def _test_fits_endpoint(self):
        allowed = ENDPOINT_TESTS[self.endpoint]
        if self.test not in allowed:
            raise ValueError(f"test '{self.test}' does not test endpoint '{self.endpoint}'; "
                             f"allowed: {', '.join(allowed)}")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.endpoint} ({self.test}, {self.comparison})"


class DecisionSpec(_Strict):
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise error rate, two-sided")
    correction: Literal[CORRECTIONS] = "holm"  # type: ignore[valid-type]
    spending: Literal[tuple(SPENDING)] = "obrien_fleming"  # type: ignore[valid-type]
    looks: list[int] | None = Field(None, description="cumulative final seeds per arm at each "
                                    "look; None: one look at tuning.final_seeds")
    secondary_seeds: int | None = Field(None, ge=1, description="final seeds of a cell no "
                                        "declared test compares; None: every look's")
    decided_cells_stop: bool = Field(False, description="a compared cell whose every "
                                     "hypothesis is decided runs no further look's seeds "
                                     "beyond secondary_seeds (a rejected hypothesis stays "
                                     "rejected: its later p-values are never read)")
    success_threshold: float | None = Field(None, ge=0, le=1)
    tests: list[DeclaredTest] = Field(min_length=1)

    @field_validator("looks")
    @classmethod
    def _increasing(cls, looks):
        if looks is not None and (not looks or looks[0] < 1
                                  or any(b <= a for a, b in zip(looks, looks[1:]))):
            raise ValueError("looks must be increasing seed counts >= 1, e.g. [8, 16, 24]")
        return looks
