"""What one trial records in MLflow: the names the runner writes and the analysis reads.

One MLflow experiment per study, one MLflow run per trial (one (config, seed) pair).

Params (strings in MLflow, the flattened trial config); the ones analysis groups by:
    dataset, model, depth, optimizer (display name, e.g. "L-Adam", "LL-Adam", "Adam"),
    base_optimizer ("adam", "rmsprop", "adadelta", "sgd", "adagrad"), sigma (initial noise scale,
    0 for a baseline), layer_fraction (1 = full Langevin), learning_rate, seed, epochs, batch_size.
Metrics per epoch, logged with step = epoch (1-based):
    train_loss, train_accuracy, val_loss, val_accuracy, epoch_time_s (training + validation),
    images_per_s (training images over training time).
Final metrics, logged once with step = last epoch (not by the tuning trials of a tuned study,
which see validation data only):
    test_loss, test_accuracy.
Tags:
    run_kind ("trial" for a training run, "analysis" for the run that holds an analysis' report),
    study, trial_key, status (one of STATUSES once the trial ended; running or interrupted
    before), pair (the base optimizer: a baseline and its Langevin twins share it), variant (one
    of VARIANTS), plus provenance (git_commit, tensorflow_version, ray_version, devices).

A tuned study (a `tuning:` block, see `harness.study.tuning`) adds:
    on every trial run: tag `phase` ("tune" or "final"), tag `arm` (stable arm name, e.g.
    "mnist-dense30-L-Adam"), tag `mlflow.parentRunId` (the arm's parent run), params `phase`,
    `arm`, `point` (index of the tuning point in the sampler's sequence, 0-based; a final trial
    carries the chosen point's index), and `learning_rate`, `sigma` (0 for plain arms), `seed`,
    `depth`, `base_optimizer` as for every trial;
    one parent run per arm: tag run_kind = "arm", tags `arm`, `study`, `pair`, `variant`,
    `budget` (K tuning trials), and once chosen `chosen.point`, `chosen.score`,
    `chosen.<hyper>` (e.g. `chosen.learning_rate`, `chosen.sigma`); params `budget`, `sampler`,
    `sampler_seed`, `metric`, `mode`, `score_epoch`, `tuning_seeds`, `final_seeds`,
    `langevin_mode` (joint / noise_only), `screen` ("top M on seeds [...]" or "none"),
    `matched_lr_controls` and the
    searched ranges `range.<hyper>.low`, `range.<hyper>.high`, `range.<hyper>.log`.
    A screening trial (a kept point on a screening seed) is a tuning trial with tag and param
    `stage` = "screen". A matched-learning-rate control (a final trial) has tags `control`
    ("sigma0": the plain optimizer at the Langevin arm's choice; "plain_lr": the Langevin arm at
    its plain twin's choice) and `control_of` (that Langevin arm), its own `arm` name
    ("ARM[sigma=0]", "ARM[lr=Adam]") and the Langevin arm's run as parent.
    A study with a declared decision has one run tagged run_kind = "design": tags `decision`
    (the study file's block, JSON) and `looks` (per look: seeds, each hypothesis' estimate and
    p-value, and the family's decision, JSON), artifacts `looks.json` (every look's outcomes and
    decision), `spec.json` (the study as validated) and `choices.json` (each arm's choice).
"""

from __future__ import annotations

EPOCH_METRICS = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_time_s",
    "images_per_s",
)
FINAL_METRICS = ("test_loss", "test_accuracy")

GROUP_PARAMS = ("dataset", "model", "depth", "optimizer", "base_optimizer", "sigma", "layer_fraction")

RUN_KIND_TRIAL = "trial"
RUN_KIND_ANALYSIS = "analysis"
RUN_KIND_ARM = "arm"  # the parent run of one arm of a tuned study
RUN_KIND_DESIGN = "design"  # a study's declared decision and its looks

PHASE_TUNE = "tune"
PHASE_FINAL = "final"
PHASES = (PHASE_TUNE, PHASE_FINAL)

STATUS_FINISHED = "finished"
STATUS_DIVERGED = "diverged"
STATUS_FAILED = "failed"
STATUSES = (STATUS_FINISHED, STATUS_DIVERGED, STATUS_FAILED)
ENDED_NORMALLY = (STATUS_FINISHED, STATUS_DIVERGED)  # what a resumed study does not run again
# Not final: a run in progress, and one whose driver stopped (`harness run --resume` continues it).
STATUS_RUNNING = "running"
STATUS_INTERRUPTED = "interrupted"

VARIANT_BASELINE = "baseline"  # sigma = 0 or layer_fraction = 0
VARIANT_LANGEVIN = "langevin"  # noise on every layer (layer_fraction = 1)
VARIANT_LAYER = "layer-langevin"  # noise on the first fraction of layers only
VARIANTS = (VARIANT_BASELINE, VARIANT_LANGEVIN, VARIANT_LAYER)

BASE_DISPLAY = {
    "sgd": "SGD",
    "adam": "Adam",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adagrad": "Adagrad",
}


def variant_of(sigma: float, layer_fraction: float) -> str:
    """Classify a trial: no noise anywhere is the baseline; noise on all layers is Langevin."""
    if sigma == 0 or layer_fraction == 0:
        return VARIANT_BASELINE
    return VARIANT_LANGEVIN if layer_fraction >= 1 else VARIANT_LAYER


def display_name(base_optimizer: str, sigma: float, layer_fraction: float) -> str:
    """The paper's names: Adam, L-Adam (full Langevin), LL-Adam (Layer Langevin)."""
    prefix = {VARIANT_BASELINE: "", VARIANT_LANGEVIN: "L-", VARIANT_LAYER: "LL-"}
    return prefix[variant_of(sigma, layer_fraction)] + BASE_DISPLAY[base_optimizer]


# Tag keys (additions for the analysis: the names above, as constants).
TAG_RUN_KIND = "run_kind"
TAG_STUDY = "study"
TAG_TRIAL_KEY = "trial_key"
TAG_STATUS = "status"
TAG_PAIR = "pair"
TAG_VARIANT = "variant"
TAG_PHASE = "phase"
TAG_ARM = "arm"
TAG_BUDGET = "budget"
TAG_PARENT_RUN = "mlflow.parentRunId"
TAG_STAGE = "stage"  # "screen" on a screening trial
TAG_CONTROL = "control"  # "sigma0" or "plain_lr" on a matched-learning-rate control
TAG_CONTROL_OF = "control_of"  # the Langevin arm a control belongs to
TAG_DECISION = "decision"
TAG_DECLARED = "decision_declared"  # when the decision was declared (saved_space.declared)
DESIGN_LOOKS, DESIGN_SPEC, DESIGN_CHOICES = "looks.json", "spec.json", "choices.json"
DESIGN_FILES = (DESIGN_SPEC, DESIGN_CHOICES, DESIGN_LOOKS)
OUTCOMES_FILE = "outcomes-{}.json"  # an ended tuning phase's outcomes, beside the study's Tune state
DESIGN_DECLARED = "declared.txt"  # the TAG_DECLARED text, kept with the design files when set
TAG_LOOKS = "looks"
TAG_PACK = "pack"  # a packed study: the Tune trial (pack) that trained the run's trial
TAG_PACK_SIZE = "pack_size"
CHOSEN_PREFIX = "chosen."  # chosen.point, chosen.score, chosen.learning_rate, chosen.sigma, ...
RANGE_PREFIX = "range."  # range.learning_rate.low / .high / .log on an arm's parent run

# The experiment kind of a study: model training, not GenAI. MLflow 3.0-3.x UIs opened such an
# experiment on its runs table by this tag; 3.17's UI takes its view from the URL's workflowType
# alone (which `harness ui` sets), and the tag stays as the record of what a study is.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
