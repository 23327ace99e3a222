"""The examples in the schedule docstrings run and are right."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "lrdoctor.schedules",
    "lrdoctor.schedules._decay",
    "lrdoctor.schedules._cyclic",
    "lrdoctor.schedules._warmup",
    "lrdoctor.schedules._compose",
    "lrdoctor.schedules._parse",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    globs = dict(vars(importlib.import_module("lrdoctor.schedules")))
    result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
