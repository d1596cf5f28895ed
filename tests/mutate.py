"""`make mutate`: mutmut 3 over one module (or all of `[tool.mutmut]`'s list), and its score.

    python tests/mutate.py [MODULE] [--jobs N] [--tests "PYTEST ARGS"] [--sample K] [MUTANT ...]

What this adds to a plain `mutmut run` (README, "Development: mutation testing"):
- only MODULE (a file or package under harness/) is mutated, not every listed file;
- mutmut's first step (one pytest run that maps tests to the functions they call) runs the fast
  tests that name the module (`--tests` to choose others; "tests" is the whole fast tier), not the
  whole fast tier, and without the tests that fail on the unmutated code (that run stops at the
  first failure, and a failing test kills every mutant): they are run once first, and left out
  with a note;
- mutmut's trampoline keeps each function's signature (`__signature__`): Keras reads a layer's
  `__init__` arguments with `inspect.getfullargspec` when the layer is made, and the bare
  trampoline `(*args, **kwargs)` made every mutated layer fail with an IndexError. A method
  other than `__init__` points to its function by `__wrapped__` instead: Keras wraps a layer's
  bound `build` with `functools.wraps`, which copies the function's `__dict__`, and a copied
  `__signature__` (with `self`) made `build` fail ("argument `self` ... does not end in
  `_shape`");
- mutants/ starts afresh when the mutated files change: mutmut would keep the test map of the
  earlier files (the new module's mutants all "no tests") and take a file it had only copied for
  one already mutated;
- the score: killed out of the mutants run, with the survivors' names (`mutmut show NAME`);
  `--sample K` runs K of the module's mutants drawn by `random.Random(2026)`, names given run
  those only.
Run from the repository root (mutmut works in ./mutants).
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import inspect
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

SAMPLE_SEED = 2026
SCOPE_FILE = Path("mutants") / "mutate-scope.json"
# run in a child: the selected fast tests on the unmutated code, writing the ids of those failing
_BASELINE = """
import json, sys, pytest
failed = []
class Failed:
    def pytest_runtest_logreport(self, report):
        if report.failed and report.nodeid not in failed:
            failed.append(report.nodeid)
code = pytest.main(sys.argv[2:], plugins=[Failed()])
open(sys.argv[1], "w").write(json.dumps({"code": int(code), "failed": failed}))
"""


def module_files(module: str, patterns: list[str]) -> list[Path]:
    """The .py files of MODULE (a file or a package folder); all listed files for ''."""
    if not module:
        return sorted(p for p in Path("harness").rglob("*.py")
                      if any(fnmatch.fnmatch(str(p), pat) for pat in patterns))
    path = Path(module)
    if path.suffix == ".py" and path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.rglob("*.py"))
    raise SystemExit(f"make mutate: MODULE={module} is neither a .py file nor a folder")


def tests_naming(files: list[Path]) -> list[str]:
    """The test files that import one of `files` by name (`harness.a.b` or `from harness.a
    import b`); a package also by its own name."""
    patterns = []
    for path in files:
        dotted = ".".join(path.with_suffix("").parts)
        parent, _, name = dotted.rpartition(".")
        if name == "__init__":
            patterns.append(re.escape(parent) + r"\b")
        else:
            patterns += [re.escape(dotted) + r"\b",
                         rf"from {re.escape(parent)} import[^\n]*\b{name}\b"]
    pattern = re.compile("|".join(patterns))
    return [str(p) for p in sorted(Path("tests").glob("test_*.py"))
            if pattern.search(p.read_text())]


def failing_tests(selection: list[str], pytest_args: list[str]) -> list[str]:
    """Node ids of the selected tests that fail without any mutant."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "baseline.json"
        subprocess.run([sys.executable, "-c", _BASELINE, str(out), "-q", "--no-header",
                        *pytest_args, *selection], check=False, stdout=subprocess.DEVNULL)
        if not out.exists():
            raise SystemExit("make mutate: the selected tests did not run: "
                             f"{sys.executable} -m pytest {' '.join(selection)}")
        result = json.loads(out.read_text())
    if result["code"] not in (0, 1):  # 2-4: interrupted, internal or usage error, 5: no tests
        raise SystemExit(f"make mutate: pytest {' '.join(selection)} exited with "
                         f"{result['code']} on the unmutated code")
    return result["failed"]


def keep_signatures() -> None:
    """Give every mutmut trampoline its function's signature (see the module docstring).
    The forked test processes inherit the patched module."""
    from mutmut.mutation import trampoline

    wrap = trampoline.wrap_in_trampoline

    @functools.wraps(wrap)
    def wrap_in_trampoline(*args, **kwargs):
        decorate = wrap(*args, **kwargs)

        def keep_signature(func):
            wrapper = decorate(func)
            signature = inspect.signature(func)
            if list(signature.parameters)[:1] == ["self"] and func.__name__ != "__init__":
                wrapper.__wrapped__ = func  # inspect.signature of the bound method drops self
            else:
                wrapper.__signature__ = signature
            return wrapper

        return keep_signature

    trampoline.wrap_in_trampoline = wrap_in_trampoline


def mutant_names(files: list[Path]) -> list[str]:
    """Every mutant of `files`, in the order `mutmut results --all true` lists them."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    return [get_mutant_name(path, name) for path in files
            for name in mutate_file_contents(str(path), path.read_text()).mutant_names]


def score(files: list[Path], names: list[str] | None) -> int:
    """Print killed out of the mutants run (or of `names`) and the survivors; 1 if none ran."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code

    status = {}
    for path in files:
        data = SourceFileMutationData(path=path)
        data.load()
        status.update({k: status_by_exit_code[v] for k, v in data.exit_code_by_key.items()})
    if names is not None:
        status = {k: status.get(k, "not checked") for k in names}
    run = {k: v for k, v in status.items() if v != "not checked"}
    counts = Counter(run.values())
    where = " ".join(str(p) for p in files) if len(files) <= 3 else f"{len(files)} files"
    print(f"\nmutation score, {where}: {counts['killed']}/{len(run)} killed"
          + (f" ({100 * counts['killed'] / len(run):.0f} %)" if run else "")
          + "".join(f", {n} {what}" for what, n in sorted(counts.items()) if what != "killed")
          + (f"; {len(status) - len(run)} not run" if len(run) < len(status) else ""))
    for name, what in sorted(run.items()):
        if what != "killed":
            print(f"  {what}: {name}")
    return 0 if run else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module", nargs="?", default="",
                        help="file or package to mutate ('' : every file [tool.mutmut] lists)")
    parser.add_argument("mutants", nargs="*", help="run these mutants only")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--tests", default="", help="pytest args selecting the tests ('tests': "
                        "the fast tier; default: the test files that import the module)")
    parser.add_argument("--sample", type=int, default=0,
                        help=f"run K mutants drawn by random.Random({SAMPLE_SEED})")
    args = parser.parse_intermixed_args(argv)  # MUTANT names may follow --tests (docstring)

    from mutmut.__main__ import cli
    from mutmut.configuration import config

    cfg = config()
    files = module_files(args.module, cfg.only_mutate)
    if args.module:
        listed = [p for p in files if cfg.should_mutate(p)]
        if len(listed) < len(files):
            print(f"note: not in [tool.mutmut] only_mutate: "
                  f"{' '.join(str(p) for p in files if p not in listed)}")
        cfg.only_mutate = [str(p) for p in files]
    selection = args.tests.split() or (tests_naming(files) if args.module else []) or ["tests"]
    print(f"tests: {' '.join(selection)}")
    failed = failing_tests(selection, cfg.pytest_add_cli_args)
    if failed:
        print(f"left out, failing on the unmutated code ({len(failed)}):\n  " + "\n  ".join(failed))
    cfg.pytest_add_cli_args_test_selection = selection + [
        arg for nodeid in failed for arg in ("--deselect", nodeid)]

    scope = {"only_mutate": cfg.only_mutate}
    if SCOPE_FILE.parent.exists() and (not SCOPE_FILE.exists()
                                       or json.loads(SCOPE_FILE.read_text()) != scope):
        shutil.rmtree(SCOPE_FILE.parent)  # results of other files: mutants/ starts afresh
    names = args.mutants or None
    if args.sample:
        everything = mutant_names(files)
        names = random.Random(SAMPLE_SEED).sample(everything, min(args.sample, len(everything)))
        print(f"sample: {len(names)} of {len(everything)} mutants")

    keep_signatures()
    try:
        cli.main(["run", "--max-children", str(args.jobs), *(names or [])],
                 prog_name="mutmut", standalone_mode=False)
    except SystemExit as stop:
        if stop.code:
            return int(stop.code) if isinstance(stop.code, int) else 1
    finally:
        if SCOPE_FILE.parent.exists():
            SCOPE_FILE.write_text(json.dumps(scope))
    return score(files, names)


if __name__ == "__main__":
    sys.exit(main())
