"""Signatures read from source equal the imported objects' signatures: every model family's
`build` and every optimizer's `__init__` (names, kinds, defaults), so a study file is checked
against what the builders and optimizers really take, without importing Keras."""

from __future__ import annotations

import importlib
import inspect

import pytest

from harness.models import MODEL_FAMILIES
from harness.optimizers import OPTIMIZERS
from harness.signatures import HARNESS, family_options, optimizer_parameters, source_signature


def _plain(signature: inspect.Signature) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize("family", MODEL_FAMILIES)
def test_a_familys_options_are_its_builders_keyword_defaults(family):
    build = importlib.import_module(f"harness.models.{family}").build
    assert _plain(source_signature(HARNESS / "models" / f"{family}.py", "build")) == \
        _plain(inspect.signature(build))
    assert family_options(family) == build.__kwdefaults__


@pytest.mark.parametrize("base", sorted(OPTIMIZERS))
def test_an_optimizers_parameters_are_its_init_signature(base):
    assert _plain(optimizer_parameters(base)) == _plain(inspect.signature(OPTIMIZERS[base].__init__))


def test_a_name_defined_twice_or_never_is_refused(tmp_path):
    source = tmp_path / "two.py"
    source.write_text("class A:\n    def f(self, x=1): ...\nclass B:\n    def f(self, y=2): ...\n")
    assert _plain(source_signature(source, "B.f"))[1] == (
        "y", inspect.Parameter.POSITIONAL_OR_KEYWORD, 2)
    with pytest.raises(LookupError, match="2 definitions of \\*.f"):
        source_signature(source, "*.f")
    with pytest.raises(LookupError, match="0 definitions of g"):
        source_signature(source, "g")
