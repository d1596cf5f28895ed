"""Signatures read from source: what a function takes, without importing its module.

The model builders and the optimizers import Keras and TensorFlow (seconds); checking a study
file needs only their parameter names and defaults. `source_signature(path, name)` parses the
file and rebuilds the `inspect.Signature` of a module-level function (`"build"`) or a method
(`"LAdam.__init__"`; `"*.__init__"`: of the file's one class defining it). Defaults must be
literals; tests compare every one with `inspect.signature` of the imported object.
"""

from __future__ import annotations

import ast
import functools
import inspect
from pathlib import Path

HARNESS = Path(__file__).parent


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    owner, _, method = name.rpartition(".")
    scopes = [tree] if not owner else [
        node for node in tree.body if isinstance(node, ast.ClassDef) and owner in ("*", node.name)]
    found = [node for scope in scopes for node in scope.body
             if isinstance(node, ast.FunctionDef) and node.name == method]
    if len(found) != 1:
        raise LookupError(f"{len(found)} definitions of {name}")
    return found[0]


@functools.cache
def source_signature(path: Path, name: str) -> inspect.Signature:
    """The signature of `name` as defined in the Python file `path` (see the module docstring)."""
    args = _function(ast.parse(Path(path).read_text()), name).args
    positional = [*args.posonlyargs, *args.args]
    padded = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    kinds = ([inspect.Parameter.POSITIONAL_ONLY] * len(args.posonlyargs)
             + [inspect.Parameter.POSITIONAL_OR_KEYWORD] * len(args.args))
    parameters = [_parameter(arg.arg, kind, default)
                  for arg, kind, default in zip(positional, kinds, padded, strict=True)]
    if args.vararg:
        parameters.append(inspect.Parameter(args.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    parameters += [_parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY, default)
                   for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        parameters.append(inspect.Parameter(args.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(parameters)


def _parameter(name: str, kind, default: ast.expr | None) -> inspect.Parameter:
    value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
    return inspect.Parameter(name, kind, default=value)


def family_options(family: str) -> dict:
    """{option: default}: the keyword-only parameters of `harness.models.<family>.build`."""
    signature = source_signature(HARNESS / "models" / f"{family}.py", "build")
    return {p.name: p.default for p in signature.parameters.values()
            if p.kind is p.KEYWORD_ONLY}


def optimizer_parameters(base: str) -> inspect.Signature:
    """The signature of the optimizer class' `__init__` in `harness/optimizers/<base>.py`."""
    return source_signature(HARNESS / "optimizers" / f"{base}.py", "*.__init__")
