"""Property: any bad search-space file is refused with one line that names the file and the field.

Hypothesis takes one of two good files (a grid study and a tuned one, both accepted as they are)
and breaks exactly one thing: a value of the wrong type, a value out of range, a key the schema
does not know, a required field removed, bad seeds (negative, repeated, empty, not integers), an
unknown optimizer hyper-parameter, or a broken `tuning:` block. `parse_space` must raise a
one-line `HarnessError`, and `harness run FILE --dry-run` must exit 2 with that one line on
stderr and no traceback.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import HarnessError
from harness.study.space import parse_space

GRID = {
    "name": "prop",
    "dataset": {"name": "synthetic", "batch_size": 8, "validation_size": 10,
                "options": {"train_size": 50, "test_size": 10, "shape": [4, 4, 1]}},
    "model": {"family": "dense", "depths": [2]},
    "optimizers": [{"base": "adam", "learning_rate": 1.0e-3},
                   {"base": "adam", "learning_rate": 1.0e-3, "sigma": 1.0e-3}],
    "seeds": 2,
    "epochs": 1,
    "resources": {"cpu": 1, "gpu": 0},
}
TUNED = {
    **{k: v for k, v in GRID.items() if k != "seeds"},
    "optimizers": [{"base": "adam"}, {"base": "adam", "sigma": "tune"}],
    "tuning": {"budget": 2, "seeds": [0], "final_seeds": 2,
               "space": {"learning_rate": {"low": 1.0e-4, "high": 1.0e-1, "log": True},
                         "sigma": {"low": 1.0e-5, "high": 1.0e-2, "log": True}}},
}
DELETE = object()  # a corruption that removes the field

# Words no field coerces: not a number, a boolean ("yes", "on", "1"...), a literal or "tune".
WORDS = st.sampled_from(["fast", "lots", "x1", "abc", "maybe", "ten", "none at all"])
INTS = st.integers(-10**6, 10**6)
NOT_WHOLE = st.floats(0.1, 0.9).map(lambda f: 3 + f)
CONTAINERS = st.one_of(st.lists(INTS, min_size=1, max_size=2),
                       st.dictionaries(WORDS, INTS, min_size=1, max_size=1))
NOT_INT = st.one_of(WORDS, NOT_WHOLE, CONTAINERS)
NOT_FLOAT = st.one_of(WORDS, CONTAINERS)
NOT_BOOL = st.one_of(WORDS, st.integers(2, 10**6), st.integers(-10**6, -1), CONTAINERS)
NOT_STR = st.one_of(INTS, NOT_WHOLE, CONTAINERS)
NOT_MAPPING = st.one_of(WORDS, INTS, st.lists(INTS, max_size=2))

GRID_TYPES = {
    NOT_INT: [("dataset", "batch_size"), ("dataset", "validation_size"), ("dataset", "limit"),
              ("epochs",), ("max_failures",), ("max_concurrent_trials",), ("model", "depths", 0)],
    NOT_FLOAT: [("optimizers", 0, "learning_rate"), ("optimizers", 1, "sigma"),
                ("optimizers", 0, "layer_fraction"), ("resources", "cpu"), ("resources", "gpu")],
    NOT_BOOL: [("mixed_precision",), ("dataset", "standardize"), ("dataset", "augment")],
    NOT_STR: [("name",), ("description",), ("experiment",), ("storage_path",),
              ("dataset", "data_dir"), ("optimizers", 0, "name")],
    WORDS: [("dataset", "name"), ("model", "family"), ("optimizers", 0, "base"), ("jit_compile",)],
    NOT_MAPPING: [("dataset",), ("model",), ("resources",), ("optimizers", 0),
                  ("optimizers", 0, "hyper")],
    st.one_of(st.just([]), WORDS): [("optimizers",), ("model", "depths")],
}
GRID_RANGES = [
    (("dataset", "batch_size"), st.integers(max_value=0)),
    (("dataset", "validation_size"), st.integers(max_value=-1)),
    (("dataset", "validation_size"), st.integers(50, 10**6)),  # all 50 training examples or more
    (("dataset", "limit"), st.integers(max_value=0)),
    (("epochs",), st.integers(max_value=0)),
    (("max_failures",), st.integers(max_value=-1)),
    (("max_concurrent_trials",), st.integers(max_value=0)),
    (("model", "depths", 0), st.integers(max_value=0)),
    (("model", "depths", 0), st.integers(10**4, 10**7)),  # deeper than Keras can build
    (("optimizers", 0, "learning_rate"), st.floats(max_value=0, allow_nan=False,
                                                   allow_infinity=False)),
    (("optimizers", 1, "sigma"), st.floats(-1e6, -1e-9)),
    (("optimizers", 0, "layer_fraction"), st.one_of(st.floats(1.0001, 1e6),
                                                    st.floats(-1e6, -1e-9))),
    (("resources", "cpu"), st.floats(max_value=0, allow_nan=False, allow_infinity=False)),
    (("resources", "gpu"), st.floats(-1e6, -1e-9)),
]
SEEDS = st.lists(st.integers(0, 100), min_size=1, max_size=3)
BAD_SEEDS = st.one_of(
    st.integers(max_value=0),  # a count of no seeds
    st.tuples(SEEDS, st.integers(max_value=-1)).map(lambda t: [*t[0], t[1]]),  # negative
    SEEDS.map(lambda s: [*s, s[0]]),  # repeated
    st.just([]),
    st.tuples(SEEDS, st.one_of(WORDS, NOT_WHOLE)).map(lambda t: [*t[0], t[1]]),  # not integers
    WORDS,
)
REQUIRED = [("name",), ("dataset",), ("model",), ("optimizers",), ("epochs",),
            ("dataset", "name"), ("model", "family"), ("model", "depths"),
            ("optimizers", 0, "base")]
MAPPINGS = {(): GRID, ("dataset",): GRID["dataset"], ("model",): GRID["model"],
            ("optimizers", 0): GRID["optimizers"][0], ("resources",): GRID["resources"]}
NEW_KEYS = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)


def unknown_keys(owner: tuple):
    known = set(MAPPINGS[owner]) | {"description", "options", "hyper", "lr_schedule", "limit",
                                    "sigma_schedule", "layer_fraction", "name", "augment",
                                    "standardize", "data_dir", "mixed_precision", "jit_compile",
                                    "max_concurrent_trials", "max_failures", "experiment",
                                    "storage_path", "tuning", "seeds", "sigma"}
    return NEW_KEYS.filter(lambda k: k not in known).map(lambda k: (owner + (k,), 1))


RANGE = ("tuning", "space", "learning_rate")
TUNED_BREAKS = [
    (("tuning", "budget"), st.one_of(st.integers(max_value=0), NOT_INT)),
    *((("tuning", name), WORDS) for name in ("sampler", "metric", "score_epoch")),
    (("tuning", "mode"), st.just("min")),  # with val_accuracy: picks the worst config
    (("tuning", "seeds"), BAD_SEEDS.filter(lambda s: s != 0)),
    (("tuning", "final_seeds"), st.just([0])),  # a tuning seed again
    (("tuning", "seed"), st.integers(max_value=-1)),
    (("seeds",), SEEDS),  # a tuned study takes tuning.seeds and tuning.final_seeds
    (RANGE, st.floats(1e-6, 1.0).flatmap(  # low not below high
        lambda low: st.floats(0, low).map(lambda high: {"low": low, "high": high}))),
    (RANGE, st.floats(-1.0, 0.0).map(lambda low: {"low": low, "high": 1.0, "log": True})),
    (("tuning", "space"), st.just({})),
    (("tuning",), NOT_MAPPING),
]


def _families() -> dict[str, tuple[dict, st.SearchStrategy]]:
    """id -> (good file, strategy of (path, value)): one family per field and kind of break."""
    def name(path):
        return ".".join(map(str, path))

    families = {}
    for values, paths in GRID_TYPES.items():
        for path in paths:
            families[f"type:{name(path)}"] = (GRID, st.tuples(st.just(path), values))
    for i, (path, values) in enumerate(GRID_RANGES):
        families[f"range{i}:{name(path)}"] = (GRID, st.tuples(st.just(path), values))
    families["seeds"] = (GRID, st.tuples(st.just(("seeds",)), BAD_SEEDS))
    for path in REQUIRED:
        families[f"missing:{name(path)}"] = (GRID, st.just((path, DELETE)))
    for owner in MAPPINGS:
        families[f"unknown:{name(owner) or 'top'}"] = (GRID, unknown_keys(owner))
    families["hyper"] = (GRID, st.tuples(st.just(("optimizers", 0, "hyper")), st.dictionaries(
        NEW_KEYS.filter(lambda k: k not in ("beta_1", "beta_2", "epsilon")),
        st.floats(0.1, 0.9), min_size=1, max_size=1)))
    for i, (path, values) in enumerate(TUNED_BREAKS):
        families[f"tuned{i}:{name(path)}"] = (TUNED, st.tuples(st.just(path), values))
    families["tuned:unknown"] = (TUNED, NEW_KEYS.filter(lambda k: k not in TUNING_KEYS).map(
        lambda k: (("tuning", k), 1)))
    families["tuned:unknown-range"] = (TUNED, NEW_KEYS.filter(
        lambda k: k not in ("learning_rate", "sigma", "beta_1", "beta_2", "epsilon")).map(
        lambda k: (("tuning", "space", k), {"low": 0.1, "high": 0.2})))
    return families


TUNING_KEYS = ("seed", "seeds", "space", "budget", "sampler", "metric", "mode", "final_seeds",
               "score_epoch", "space_by_base")
FAMILIES = _families()
ANY_BREAK = st.one_of(*(st.tuples(st.just(good), breaks) for good, breaks in FAMILIES.values()))


def broken(good: dict, path: tuple, value) -> dict:
    doc = copy.deepcopy(good)
    *parents, last = path
    owner = doc
    for key in parents:
        owner = owner[key]
    if value is DELETE:
        del owner[last]
    else:
        owner[last] = value
    return doc


def check_message(message: str, path: tuple) -> None:
    assert "\n" not in message.strip(), message
    assert "bad.yaml" in message, message
    assert str(path[0]) in message, message  # names the field (its top-level part at least)


@pytest.mark.parametrize("good", [GRID, TUNED], ids=["grid", "tuned"])
def test_the_good_files_are_accepted(good):
    """Every refusal below comes from the one thing broken, not from the base file."""
    assert parse_space(copy.deepcopy(good), Path("good.yaml")).name == "prop"


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_broken_study_is_refused_with_one_line_naming_the_field(family, data):
    good, breaks = FAMILIES[family]
    path, value = data.draw(breaks)
    with pytest.raises(HarnessError) as refused:
        parse_space(broken(good, path, value), Path("bad.yaml"))
    check_message(str(refused.value), path)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_BREAK)
def test_harness_run_refuses_a_broken_file_with_exit_2_and_one_line(tmp_path_factory, case):
    good, (path, value) = case
    file = tmp_path_factory.mktemp("space") / "bad.yaml"
    file.write_text(yaml.safe_dump(broken(good, path, value)))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", str(file), "--dry-run"])
    assert code == 2
    assert out.getvalue() == "" and "Traceback" not in err.getvalue()
    assert err.getvalue().startswith("harness run: error: ")
    check_message(err.getvalue(), path)
