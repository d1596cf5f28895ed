"""`harness run`: run a study from a search-space file, locally or on a Ray cluster.

    harness run search_spaces/smoke.yaml              # embedded local Ray, ./mlflow.db, ./results
    harness run SPACE.yaml --dry-run                  # print the trial table and exit
    harness run SPACE.yaml --address auto             # an existing cluster (or set RAY_ADDRESS)
    harness run --resume NAME                         # finish an interrupted study
    harness run SPACE.yaml --depths 3,20              # a part of it: NAME-d3-20, same MLflow experiment
    harness run SPACE.yaml --tuning-only              # tuning only; add decision: to the file, rerun
    harness run SPACE.yaml --state-from DIR           # go on in a new store from `harness export`'s DIR
Rerunning the same command also resumes: only unfinished or errored trials run again. A rerun's
file may differ from the study's start only in its description, and in decision and
tuning.final_seeds until the finals start.
"""

from __future__ import annotations

import argparse
import os
import shlex
from contextlib import contextmanager
from pathlib import Path

from harness.errors import HarnessError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a study (search-space YAML) as Ray Tune trials logged to MLflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("space", nargs="?", help="search-space YAML file (see search_spaces/)")
    parser.add_argument("--resume", metavar="NAME",
                        help="resume the study NAME saved under the storage path")
    parser.add_argument("--depths", metavar="D1,D2",
                        help="run only these of the file's depths, as the study NAME-dD1-D2 "
                        "recorded in the whole study's MLflow experiment (split a long study)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the file, print the trial table and exit")
    parser.add_argument("--address", help="Ray cluster address ('auto' or host:port); "
                        "default: RAY_ADDRESS, else an embedded local Ray")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI; default: "
                        "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this directory")
    parser.add_argument("--storage-path", help="Ray results (local dir or s3://, gs:// URI); "
                        "default: the file's storage_path, else ./results")
    parser.add_argument("--max-concurrent", type=int, metavar="N",
                        help="at most N trials at once, a resumed study too (default: the file's, else as "
                        "resources allow)")
    parser.add_argument("--restart", action="store_true",
                        help="start over: delete the study's saved Tune state and move its "
                        "MLflow trial runs to MLflow's trash")
    parser.add_argument("--tuning-only", action="store_true",
                        help="a tuned study: run its tuning (and screening) and stop once every "
                        "arm's choice is saved, printing how often each arm trained; declare "
                        "the decision from that, then rerun the file for the finals")
    parser.add_argument("--state-from", metavar="DIR",
                        help="go on with a study whose store is gone or elsewhere: copy the state "
                        "`harness export` saved in DIR into this store (where the study has not "
                        "run) and start at the first phase that had not ended")
    parser.add_argument("--verbose", action="store_true", help="forward the trials' own output")
    parser.set_defaults(func=run)


def _int_list(flag: str, text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise HarnessError(f"{flag} {text!r}: allowed: integers separated by commas, e.g. 3,20") \
            from None


def _table(configs: list[dict], columns: list[str]) -> str:
    import pandas as pd

    table = pd.DataFrame(configs)
    table = table[[c for c in columns if c in table]]
    table.index += 1
    return table.to_string(float_format=lambda v: f"{v:g}")


TABLE_COLUMNS = ["dataset", "model", "depth", "optimizer", "learning_rate", "sigma",
                 "layer_fraction", "seed", "epochs", "trial_key"]


def _packing(spec, configs: list[dict]) -> list[str]:
    """The packing lines of a packed study's trials (none for an unpacked one)."""
    from harness.study.packs import packed

    return packed(spec, configs)[1] if spec.packing else []


def _dry_run(spec) -> str:
    """What the study will run; the same file always prints the same text."""
    from harness.study.space import trial_configs

    if spec.tuning is None:
        configs = trial_configs(spec)
        return "\n".join([f"study {spec.name!r}: {len(spec.model.depths)} depths × "
                          f"{len(spec.optimizers)} optimizers × {len(spec.seeds)} seeds",
                          *_packing(spec, configs), _table(configs, TABLE_COLUMNS)])
    if spec.tuning.chosen is not None:
        return _dry_run_given(spec)
    import pandas as pd

    from harness.study.looks import seed_counts
    from harness.study.tuning import arms, rounds, tune_configs

    tuning = spec.tuning
    configs = tune_configs(spec)
    hyper = sorted({k for c in configs for k in c["hyper"]})
    rows = [{**c, **{k: c["hyper"].get(k) for k in hyper}} for c in configs]
    n_arms = len(arms(spec))
    finals = tuning.final_seed_list
    ranges = "; ".join(f"{base}: " + ", ".join(
        f"{k} [{r.low:g}, {r.high:g}]{' log' if r.log else ''}"
        for k, r in tuning.ranges(base).items())
        for base in dict.fromkeys(o.base for o in spec.optimizers))
    per_arm = tuning.trials_per_arm
    budget = f"budget {tuning.budget}"
    if tuning.screen:
        budget += (f" + {tuning.kept} kept points × {len(tuning.screen_seed_list)} screening "
                   f"seeds = {per_arm} tuning trials per arm")
    lines = [
        f"study {spec.name!r} (tuned): {n_arms} arms × {budget} = {n_arms * per_arm} tuning "
        f"trials, then {n_arms} arms × {len(finals)} final seeds = {n_arms * len(finals)} "
        "final trials" + (" (at most: looks stop when decided)" if len(seed_counts(spec)) > 1
                          else ""),
        f"sampler {tuning.sampler} (seed {tuning.seed}); ranges {ranges}; tuning seeds "
        f"{tuning.seeds}" + (f"; screening seeds {tuning.screen_seed_list}" if tuning.screen
                             else ""),
        *_protocol_lines(spec),
        "phase tune:" if len(rounds(spec)) == 1 else "phase tune (round 1: the plain arms):",
        *_packing(spec, configs),
        _table(rows, ["arm", "point", "learning_rate", "sigma", *hyper, "seed", "epochs",
                      "trial_key"]),
    ]
    if len(rounds(spec)) > 1:
        lines.append(f"phase tune-noise (round 2): each Langevin arm draws sigma alone "
                     f"({tuning.budget} points) at its plain twin's chosen setting")
    if tuning.screen:
        lines.append(f"phase screen: each arm's {tuning.kept} best points (stage one) on the "
                     f"screening seeds {tuning.screen_seed_list}; the choice is the best mean "
                     "over a point's seeds (a failed run scores at chance)")
    lines += [
        f"phase final: each arm's best tuning point by {tuning.metric} ({tuning.score_epoch} "
        f"epoch, {tuning.mode}; ties: the earliest point) on final seeds {finals}:",
        pd.DataFrame({"arm": [a.name for a in arms(spec)], "final trials": len(finals)},
                     index=range(1, n_arms + 1)).to_string(),
    ]
    if tuning.matched_lr_controls:
        lines.append("matched-lr controls: where a Langevin arm chose another learning rate "
                     "than its plain twin, the finals add ARM[sigma=0] and ARM[lr=PLAIN] on the "
                     f"same seeds (up to {2 * sum(a.optimizer.noisy for a in arms(spec))} "
                     f"arms × {len(finals)} seeds)")
    return "\n".join(lines + _power(spec))


def _power(spec) -> list[str]:
    """The declared tests' power lines (none without a decision)."""
    if spec.decision is None:
        return []
    from harness.study.power_plan import power_lines

    return power_lines(spec)


def _dry_run_given(spec) -> str:
    """A study whose choices are given (`tuning.chosen`): its finals at once, with the controls
    those choices need and the declared tests' power."""
    from harness.study.looks import control_lines, seed_counts
    from harness.study.tuning import final_configs, given_choices

    choices = given_choices(spec)
    configs = final_configs(spec, choices)
    seeds = spec.tuning.final_seed_list
    lines = [
        f"study {spec.name!r} (choices given): {len(choices)} arms, no tuning trial (their "
        f"settings come from {spec.tuning.chosen_from}); {len(configs)} final trials on seeds "
        f"{seeds}" + (" (at most: looks stop when decided)" if len(seed_counts(spec)) > 1
                      else ""),
        *[f"  {name}: " + ", ".join(f"{k}={v:g}" for k, v in c.values.items())
          for name, c in choices.items()],
        *control_lines(spec, choices),
        "phase final:",
        *_packing(spec, configs),
        _table(configs, ["arm", "learning_rate", "sigma", "seed", "epochs", "trial_key"]),
    ]
    return "\n".join(lines + _power(spec))


def _protocol_lines(spec) -> list[str]:
    tuning = spec.tuning
    if tuning.langevin == "noise_only":
        return ["mode noise_only: the plain arms are tuned first; each Langevin arm then "
                "searches sigma alone at its plain twin's chosen learning rate"]
    return ["mode joint: twins share the learning-rate draws; a Langevin arm also draws sigma"]


def _load(args: argparse.Namespace):
    """(the study, where it came from): the file, checked (a refused one raises before any
    import of TensorFlow), or the resumed study's saved copy; `--depths` cuts the file."""
    build = not args.dry_run  # a dry run checks what needs no TensorFlow
    if args.resume:
        if args.depths:
            raise HarnessError("--depths cuts a search-space file; a resumed part is resumed by "
                               "its own name (NAME-dD1-D2)")
        from harness.study import saved_space
        from harness.study.runner import resolve_storage

        return saved_space.load(args.resume, resolve_storage(args.storage_path), build), \
            args.resume
    from harness.study.space import depth_part, load_space

    spec = load_space(args.space, build)
    if args.depths:
        spec = depth_part(spec, _int_list("--depths", args.depths), Path(args.space), build)
    return spec, args.space


def resume_command(args: argparse.Namespace, name: str) -> str:
    """The command that goes on with this run of study `name` where it stopped: `--resume NAME`
    with the flags that say where the study lives and how it runs. A `--tuning-only` run resumes
    tuning-only, so its finals still wait for the decision declared from the tuning outcomes;
    an MLflow store named by MLFLOW_TRACKING_URI is written out, for a shell without it."""
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    flags = [item for flag, value in (("--storage-path", args.storage_path),
                                      ("--tracking-uri", tracking_uri),
                                      ("--address", args.address),
                                      ("--max-concurrent", args.max_concurrent))
             if value is not None for item in (flag, str(value))]
    return shlex.join(["harness", "run", "--resume", name, *flags,
                       *(["--tuning-only"] if args.tuning_only else [])])


@contextmanager
def _resume_told(args: argparse.Namespace, name: str):
    """The runner's resume line (`RESUME_ENV`) names `resume_command` while the study runs,
    unless a submitted job already set its own (`harness submit ...`)."""
    from harness.study.runner import RESUME_ENV

    if RESUME_ENV in os.environ:
        yield
        return
    os.environ[RESUME_ENV] = resume_command(args, name)
    try:
        yield
    finally:
        del os.environ[RESUME_ENV]


def run(args: argparse.Namespace) -> int:
    from harness.console import quiet_start

    if not args.space and not args.resume:
        raise HarnessError("give a search-space file (e.g. search_spaces/smoke.yaml) or "
                           "--resume NAME")
    if args.space and args.resume:
        raise HarnessError("give either a search-space file or --resume NAME, not both")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise HarnessError(f"--max-concurrent must be >= 1; got {args.max_concurrent}")
    if args.state_from and (args.resume or args.restart or args.dry_run):
        raise HarnessError("--state-from starts the study of a search-space file in a new store; "
                           "allowed with neither --resume, --restart nor --dry-run (the file: "
                           "the one it ran, or DIR/state/harness_space.yaml)")
    # before TensorFlow, Ray and MLflow start; a dry run needs none of them
    with quiet_start(args.verbose, import_tensorflow=not args.dry_run):
        spec, where = _load(args)
    if args.dry_run:
        print(_dry_run(spec))
        print("checked without TensorFlow; each optimizer and network is also built (the values "
              "it is given) when the study starts, before any trial (harness run)")
        return 0

    from harness.study.console import study_log
    from harness.study.runner import resolve_storage, run_study

    study_dir = f"{resolve_storage(args.storage_path, spec).rstrip('/')}/{spec.name}"
    if args.state_from:
        from harness.study.carry import adopt_state

        files = adopt_state(args.state_from, study_dir)
        print(f"study {spec.name!r}: state carried from {args.state_from} into {study_dir} "
              f"({', '.join(files)})", flush=True)
    with study_log(study_dir, args.verbose) as log, _resume_told(args, spec.name):
        if log:
            print(f"study {spec.name!r}: Ray, Tune and MLflow detail in {log}", flush=True)
        outcome = run_study(
            spec, where=where, address=args.address, tracking_uri=args.tracking_uri,
            storage_path=args.storage_path, max_concurrent=args.max_concurrent,
            restart=args.restart, tuning_only=args.tuning_only, verbose=args.verbose,
        )
    if log and outcome.errored:  # a deliberate Ctrl-C went nowhere wrong: its line says resume
        print(f"details of what went wrong: {log}")
    if outcome.interrupted:
        return 130
    return 1 if outcome.errored else 0
