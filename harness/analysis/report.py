"""A study's analysis: compute every table, write them with the plots and a markdown report into a
directory, and attach that directory to the study as the artifacts of an MLflow run tagged
run_kind = "analysis" (which the loader skips).

An untuned study is analysed over all its trials. A tuned study is analysed in two parts that never
pool (see `tuned`): the tuning trials give the budget curves; the final trials give the success
rates and every statistic an untuned study gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.analysis import plots
from harness.analysis.aggregate import summarize
from harness.analysis.choice import RULE
from harness.analysis.cost import cost_table
from harness.analysis.curves import CURVE_METRIC, learning_curves, time_to_target
from harness.analysis.depth import depth_trend
from harness.analysis.intervals import CONFIDENCE, MIN_N_BOOTSTRAP, MIN_N_T, MIN_N_WILCOXON
from harness.analysis.load import Study, continuations
from harness.analysis.metrics import ended, is_accuracy
from harness.analysis.paired import HOLM_FAMILY, pair_seeds, summarize_gains
from harness.analysis.pool import pooled_studies
from harness.analysis.success import SUCCESS_METRIC, thresholds
from harness.analysis.tables import (
    LEAD_TITLE,
    bootstrap_methods,
    budget_table,
    choices_table,
    continuation_notes,
    declared_table,
    depth_claims,
    gains_table,
    lead_sentences,
    markdown_table,
    matched_lr_table,
    paper_table,
    success_table,
    success_trend_table,
    twins_table,
)
from harness.analysis.tuned import Tuning, analyze_tuning, finals_of
from harness.study.run_schema import (
    PHASE_FINAL,
    RUN_KIND_ANALYSIS,
    STATUSES,
    TAG_RUN_KIND,
    TAG_STUDY,
)
from harness.study.tracking_uri import mlflow_client

DEFAULT_METRIC = "test_accuracy"
POOLED_TITLE = (
    "Studies pooled (secondary: a verdict comes only from each study's own declared tests, in its "
    "own analysis; the tables below pool the runs of the groups each study ran)"
)
NO_PAIRS = "No Langevin optimizer ran beside its baseline: nothing to pair."
MINIMUM_N = (
    f"Minimum n: t intervals from {MIN_N_T} seeds, BCa bootstrap intervals from {MIN_N_BOOTSTRAP}, "
    f"Wilcoxon p-values from {MIN_N_T} (p < 0.05 is reachable from {MIN_N_WILCOXON}); below that "
    "the tables say 'too few seeds'. Wilson intervals at any n."
)


@dataclass(frozen=True)
class Analysis:
    study: Study  # the trials analysed: all of an untuned study, the finals of a tuned one
    metric: str
    target: float | None
    summary: pd.DataFrame  # aggregate.summarize
    per_seed: pd.DataFrame  # paired.pair_seeds
    gains: pd.DataFrame  # paired.summarize_gains
    trend: pd.DataFrame  # depth.depth_trend
    curves: pd.DataFrame  # curves.learning_curves
    to_target: pd.DataFrame | None  # curves.time_to_target, when a target is given
    continuations: pd.DataFrame  # load.continuations
    tuning: Tuning | None = None  # a tuned study's protocol, choices, budget curves, success
    cost: pd.DataFrame | None = None  # cost.cost_table of every run (tuning ones too)
    not_ended: int = 0  # analysed runs (a tuned study's finals) still going or interrupted

    def figures(self) -> dict:
        figures = {
            **plots.metric_vs_depth(self.summary, self.metric),
            **plots.gain_vs_depth(self.gains, self.trend, self.metric),
            **plots.curves_by_depth(self.curves, CURVE_METRIC),
        }
        if self.tuning is not None:
            finals = self.study.trials
            figures |= plots.budget_curves(self.tuning.curves)
            figures |= plots.finals_points(
                finals, thresholds(finals, self.tuning.threshold), SUCCESS_METRIC
            )
            figures |= plots.success_vs_depth(self.tuning.success)
            figures |= plots.final_curves(self.study.epochs, CURVE_METRIC)
            figures |= plots.matched_lr_panels(self.tuning.matched_lr_seeds)
        return figures

    def sections(self) -> list[tuple[str, str]]:
        """(title, body) of every part of the report, tables as plain text frames."""
        parts = []
        pooled = pooled_studies(self.study.trials)
        if len(pooled):
            parts.append((POOLED_TITLE, pooled))
        if self.tuning is not None and self.tuning.declared is not None:
            parts += declared_sections(self.tuning)
        elif len(self.gains):  # no declared test: the deepest comparison, in plain words
            parts.append((LEAD_TITLE, lead_sentences(self.gains, self.metric)))
        if self.tuning is not None:
            parts += tuning_sections(self.tuning)
        if len(self.continuations):
            parts.append(
                ("Continuations, not replications", continuation_notes(self.continuations))
            )
        parts += [
            (
                f"{self.metric} per optimizer (mean ± 95% t-interval half-width over seeds; "
                "[low, high] where clipped to the metric's range)",
                paper_table(self.summary, self.metric),
            ),
            (
                gains_title(self.gains),
                gains_table(self.gains, self.metric) if len(self.gains) else NO_PAIRS,
            ),
            ("Gain vs depth", depth_claims(self.trend, self.gains, self.metric)),
        ]
        if self.cost is not None and len(self.cost):
            parts.append(("Cost per phase (wall time; trial time: each Tune trial's span, a pack "
                          "counted once; from the runs' start and end times)",
                          cost_rounded(self.cost)))
        return parts

    def text(self) -> str:
        """What the terminal shows: every section, tables as aligned text."""
        return "\n\n".join(f"{title}\n\n{_as_text(body)}" for title, body in self.sections())


def cost_rounded(cost: pd.DataFrame) -> pd.DataFrame:
    """The cost table with hours to two decimals (the CSV keeps every digit)."""
    return cost.round({"wall_hours": 2, "trial_hours": 2})


def gains_title(gains: pd.DataFrame) -> str:
    """The paired gains' section title: each interval's method and the Holm family."""
    return (
        "Paired gains: Langevin − baseline, seed by seed (gain ± 95% t interval; bootstrap CI: "
        f"{bootstrap_methods(gains['boot_method'])}; {HOLM_FAMILY})"
    )


def _as_text(body) -> str:
    if isinstance(body, pd.DataFrame):
        return body.to_string(index=False) if len(body) else "(none)"
    if isinstance(body, list):
        return "\n".join(f"- {line}" for line in body) if body else "(none)"
    return body


def _as_markdown(body) -> str:
    if isinstance(body, pd.DataFrame):
        return markdown_table(body) if len(body) else "(none)"
    return _as_text(body)


def declared_sections(tuning: Tuning) -> list[tuple[str, object]]:
    """The verdict from the declared tests (primary), its table, and the note that every other
    section is secondary."""
    return [
        ("Verdict: the declared tests (primary)", tuning.declared_lines),
        ("Declared tests, per hypothesis", declared_table(tuning.declared)),
        ("Looks taken (group-sequential, α spent by the declared spending function)",
         tuning.looks),
        (
            "Everything below is secondary",
            "The tables and figures below describe the study; they decide nothing. A verdict "
            "comes from the declared tests above only.",
        ),
    ]


def matched_lr_section(tuning: Tuning) -> list[tuple[str, object]]:
    if tuning.matched_lr.empty:
        return []
    return [(
        "Matched learning rates (2 × 2, secondary unless declared): noise effect at each "
        "learning rate, learning-rate effect at each σ, paired on seed (test accuracy, pp; "
        "exact sign-flip p); tuned vs tuned = noise at the plain lr + lr effect at σ*",
        matched_lr_table(tuning.matched_lr),
    )]


def tuning_sections(tuning: Tuning) -> list[tuple[str, object]]:
    """Protocol (budget, ranges, seeds), choices with edge warnings, success (rates, twins, depth
    trend), budget curves."""
    return [
        (
            "Tuning protocol per arm (tuning trials and final trials are never pooled)",
            tuning.protocol,
        ),
        (f"Chosen configuration per arm ({RULE})", choices_table(tuning.choices)),
        ("Range warnings", tuning.warnings() or ["no chosen value at the edge of its range"]),
        (
            f"Success on the final seeds ({tuning.threshold_text()}; diverged or failed = not "
            "trained; Wilson interval; accuracy given success with a bootstrap interval: "
            f"{bootstrap_methods(tuning.success['acc_method'])})",
            success_table(tuning.success),
        ),
        (
            "Success rate, Langevin vs baseline twin (difference with its Newcombe interval; "
            "Fisher's exact test; exact McNemar test on the seeds both twins ran)",
            twins_table(tuning.twins),
        ),
        (
            "Success vs depth (logistic, secondary): change per layer of the Langevin − baseline "
            "difference in log-odds of training (depth × twin interaction), seeds as clusters",
            success_trend_table(tuning.trend),
        ),
        *matched_lr_section(tuning),
        (
            "Expected best validation accuracy vs tuning budget (opda, 95% band)",
            budget_table(tuning.curves),
        ),
    ]


def analyze(
    study: Study,
    metric: str = DEFAULT_METRIC,
    target: float | None = None,
    confidence: float = CONFIDENCE,
    success_threshold: float | None = None,
) -> Analysis:
    """Every statistic of the study for `metric` (a one-line HarnessError if it was not logged, or
    if a tuned study has no finished final run); `success_threshold` (tuned studies) overrides
    chance + 10 points."""
    tuning = analyze_tuning(study, success_threshold, confidence) if study.tuned else None
    study.require_metric(metric)
    analysed = finals_of(study) if study.tuned else study
    per_seed = pair_seeds(analysed.trials, metric)
    gains = summarize_gains(per_seed, metric, confidence)
    return Analysis(
        study=analysed,
        metric=metric,
        target=target,
        summary=summarize(analysed.trials, metric, confidence),
        per_seed=per_seed,
        gains=gains,
        trend=depth_trend(per_seed, gains, confidence),
        curves=learning_curves(analysed.epochs, CURVE_METRIC, confidence),
        to_target=None if target is None else time_to_target(analysed.epochs, target, CURVE_METRIC),
        continuations=continuations(analysed.trials, analysed.epochs),
        tuning=tuning,
        cost=cost_table(study.trials),
        not_ended=_not_ended(study),
    )


def _not_ended(study: Study) -> int:
    trials = study.trials
    if study.tuned:
        trials = trials[trials["phase"] == PHASE_FINAL]
    return len(trials) - len(ended(trials))


def markdown(analysis: Analysis, plot_names: list[str]) -> str:
    trials = analysis.study.trials
    counts = ", ".join(f"{(trials['status'] == s).sum()} {s}" for s in STATUSES)
    if analysis.not_ended:
        counts += (f"; {analysis.not_ended} more not ended yet (running or interrupted), left "
                   "out until they end")
    which = "final trials" if analysis.tuning is not None else "trials"
    failures = (
        "a diverged or failed run counts at chance accuracy (1 / number of classes)"
        if is_accuracy(analysis.metric)
        else "diverged and failed runs are left out of this metric and counted"
    )
    parts = [f"## {title}\n\n{_as_markdown(body)}" for title, body in analysis.sections()]
    context = (f"{len(trials)} {which} ({counts}); metric `{analysis.metric}`; {failures}; the "
               f"tables show how many. {MINIMUM_N} Store: `{analysis.study.tracking_uri}`, "
               f"experiment {analysis.study.experiment_id}.")
    # the answer first (the declared verdict, or the deepest comparison in plain words)
    sections = [f"# Analysis of study `{analysis.study.name}`", *parts[:1], context, *parts[1:]]
    if analysis.to_target is not None:
        sections += [
            f"## Time to {CURVE_METRIC} ≥ {analysis.target:g}",
            markdown_table(analysis.to_target.drop(columns=["target", "metric"])),
        ]
    sections += ["## Plots", "\n\n".join(f"![{name}]({name}.png)\n\n*{plots.caption(name)}*"
                                         if plots.caption(name) else f"![{name}]({name}.png)"
                                         for name in plot_names)]
    return "\n\n".join(sections) + "\n"


def file_suffix(metric: str) -> str:
    """What a metric's files add to their names: nothing for the default metric, "-METRIC" for
    another, so that `--metric M` never overwrites the default metric's report, tables or plots."""
    return "" if metric == DEFAULT_METRIC else f"-{metric}"


def write_report(analysis: Analysis, out_dir: Path) -> list[Path]:
    """summary.csv, paired_seeds.csv, gains.csv, depth_trend.csv, curves.csv, time_to_target.csv
    (with a target), cost.csv, for a tuned study protocol.csv, chosen.csv, budget_curves.csv, success.csv,
    success_twins.csv, success_trend.csv, matched_lr.csv, matched_lr_seeds.csv and (a declared
    decision) declared.csv,
    report.md and the plots (PNG + SVG) into `out_dir` (for a metric other than the default
    every name carries `file_suffix`: report-val_accuracy.md, gains-val_accuracy.csv, ...);
    returns the paths, the report last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = file_suffix(analysis.metric)
    tables = {
        "summary": analysis.summary,
        "paired_seeds": analysis.per_seed,
        "gains": analysis.gains,
        "depth_trend": analysis.trend,
        "curves": analysis.curves,
        "time_to_target": analysis.to_target,
        "cost": analysis.cost,
    }
    if analysis.tuning is not None:
        tables |= {
            "protocol": analysis.tuning.protocol,
            "chosen": analysis.tuning.choices,
            "budget_curves": analysis.tuning.curves,
            "success": analysis.tuning.success,
            "success_twins": analysis.tuning.twins,
            "success_trend": analysis.tuning.trend,
            "matched_lr": analysis.tuning.matched_lr,
            "matched_lr_seeds": analysis.tuning.matched_lr_seeds,
            "declared": analysis.tuning.declared,
            "looks": analysis.tuning.looks,
        }
    paths = []
    for name, frame in tables.items():
        if frame is not None:
            paths.append(out_dir / f"{name}{suffix}.csv")
            frame.to_csv(paths[-1], index=False)
    figures = {name if analysis.metric in name else f"{name}{suffix}": figure
               for name, figure in analysis.figures().items()}
    paths += plots.save(figures, out_dir)
    paths.append(out_dir / f"report{suffix}.md")
    paths[-1].write_text(markdown(analysis, list(figures)), encoding="utf-8")
    return paths


def log_analysis_run(analysis: Analysis, out_dir: Path) -> str:
    """Attach `out_dir` to the study as an MLflow run tagged run_kind = "analysis"; returns its id."""
    client = mlflow_client(analysis.study.tracking_uri)
    run = client.create_run(
        analysis.study.experiment_id,
        run_name=f"analysis-{analysis.metric}",
        tags={TAG_RUN_KIND: RUN_KIND_ANALYSIS, TAG_STUDY: analysis.study.name},
    )
    run_id = run.info.run_id
    client.log_param(run_id, "metric", analysis.metric)
    if analysis.target is not None:
        client.log_param(run_id, "target", analysis.target)
    if analysis.tuning is not None and analysis.tuning.threshold is not None:
        client.log_param(run_id, "success_threshold", analysis.tuning.threshold)
    client.log_artifacts(run_id, str(out_dir))
    client.set_terminated(run_id)
    return run_id
