"""A study's analysis: compute every table, write them with the plots and a markdown report into a
directory, and attach that directory to the study as the artifacts of an MLflow run tagged
run_kind = "analysis" (which the loader skips)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.analysis import plots
from harness.analysis.aggregate import summarize
from harness.analysis.curves import CURVE_METRIC, learning_curves, time_to_target
from harness.analysis.depth import depth_trend
from harness.analysis.intervals import CONFIDENCE
from harness.analysis.load import Study, mlflow_client
from harness.analysis.paired import pair_seeds, summarize_gains
from harness.analysis.tables import depth_claims, gains_table, markdown_table, paper_table
from harness.study.run_schema import RUN_KIND_ANALYSIS, STATUSES, TAG_RUN_KIND, TAG_STUDY

NO_PAIRS = "No Langevin optimizer ran beside its baseline: nothing to pair."


@dataclass(frozen=True)
class Analysis:
    study: Study
    metric: str
    target: float | None
    summary: pd.DataFrame  # aggregate.summarize
    per_seed: pd.DataFrame  # paired.pair_seeds
    gains: pd.DataFrame  # paired.summarize_gains
    trend: pd.DataFrame  # depth.depth_trend
    curves: pd.DataFrame  # curves.learning_curves
    to_target: pd.DataFrame | None  # curves.time_to_target, when a target is given

    def figures(self) -> dict:
        return {
            **plots.metric_vs_depth(self.summary, self.metric),
            **plots.gain_vs_depth(self.gains, self.trend, self.metric),
            **plots.curves_by_depth(self.curves, CURVE_METRIC),
        }

    def text(self) -> str:
        """What the terminal shows: the paper-style table, the paired gains, the depth claims."""
        return "\n\n".join(
            [
                f"{self.metric}: mean ± 95% CI half-width over seeds",
                paper_table(self.summary, self.metric).to_string(index=False),
                "paired gains, Langevin − baseline, same seed",
                gains_table(self.gains, self.metric).to_string(index=False)
                if len(self.gains)
                else NO_PAIRS,
                "\n".join(depth_claims(self.trend, self.gains, self.metric)),
            ]
        )


def analyze(
    study: Study,
    metric: str = "test_accuracy",
    target: float | None = None,
    confidence: float = CONFIDENCE,
) -> Analysis:
    """Every statistic of the study for `metric` (a one-line HarnessError if it was not logged)."""
    study.require_metric(metric)
    per_seed = pair_seeds(study.trials, metric)
    gains = summarize_gains(per_seed, metric, confidence)
    return Analysis(
        study=study,
        metric=metric,
        target=target,
        summary=summarize(study.trials, metric, confidence),
        per_seed=per_seed,
        gains=gains,
        trend=depth_trend(per_seed, gains, confidence),
        curves=learning_curves(study.epochs, CURVE_METRIC, confidence),
        to_target=None if target is None else time_to_target(study.epochs, target, CURVE_METRIC),
    )


def markdown(analysis: Analysis, plot_names: list[str]) -> str:
    trials = analysis.study.trials
    counts = ", ".join(f"{(trials['status'] == s).sum()} {s}" for s in STATUSES)
    sections = [
        f"# Analysis of study `{analysis.study.name}`",
        f"{len(trials)} trials ({counts}); metric `{analysis.metric}`; statistics over finished "
        "trials only, failed and diverged ones are counted in each cell. Store: "
        f"`{analysis.study.tracking_uri}`, experiment {analysis.study.experiment_id}.",
        f"## {analysis.metric} per optimizer (mean ± 95% t-interval half-width over seeds)",
        markdown_table(paper_table(analysis.summary, analysis.metric)),
        "## Paired gains: Langevin − baseline, seed by seed",
        markdown_table(gains_table(analysis.gains, analysis.metric))
        if len(analysis.gains)
        else NO_PAIRS,
        "## Gain vs depth",
        "\n".join(
            f"- {claim}" for claim in depth_claims(analysis.trend, analysis.gains, analysis.metric)
        ),
    ]
    if analysis.to_target is not None:
        sections += [
            f"## Time to {CURVE_METRIC} ≥ {analysis.target:g}",
            markdown_table(analysis.to_target.drop(columns=["target", "metric"])),
        ]
    sections += ["## Plots", "\n".join(f"![{name}]({name}.png)" for name in plot_names)]
    return "\n\n".join(sections) + "\n"


def write_report(analysis: Analysis, out_dir: Path) -> list[Path]:
    """summary.csv, paired_seeds.csv, gains.csv, depth_trend.csv, curves.csv, time_to_target.csv
    (with a target), report.md and the plots (PNG + SVG) into `out_dir`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "summary": analysis.summary,
        "paired_seeds": analysis.per_seed,
        "gains": analysis.gains,
        "depth_trend": analysis.trend,
        "curves": analysis.curves,
        "time_to_target": analysis.to_target,
    }
    paths = []
    for name, frame in tables.items():
        if frame is not None:
            paths.append(out_dir / f"{name}.csv")
            frame.to_csv(paths[-1], index=False)
    figures = analysis.figures()
    paths += plots.save(figures, out_dir)
    paths.append(out_dir / "report.md")
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
    client.log_artifacts(run_id, str(out_dir))
    client.set_terminated(run_id)
    return run_id
