"""The examples in docstrings are run: a rule's example is part of its specification."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import index
import qa

MODULES = sorted(
    f"{pkg.__name__}.{m.name}" for pkg in (qa, index) for m in pkgutil.iter_modules(pkg.__path__) if not m.ispkg
) + ["ui.web_render"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_rules_have_examples_that_run():
    for name in ("qa.checks", "qa.pipeline"):
        assert doctest.testmod(importlib.import_module(name)).attempted > 0, name
