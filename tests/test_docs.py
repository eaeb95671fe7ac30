"""Every public function has a numpydoc docstring whose examples run, and the
C builtins have text signatures."""
import doctest
import inspect
import re

import numpy as np
import pytest

import attnnorm as an
from attnnorm._docs import NORMALIZER_DOCS

SECTIONS = ["Parameters", "Returns", "Raises", "Notes", "References", "Examples"]
FUNCTIONS = [n for n in an.__all__ if inspect.isfunction(getattr(an, n))]
BUILTINS = ["get_num_threads", "set_num_threads", "simd_path", "simd_best", "has_openmp"]


def sections(doc):
    lines = inspect.cleandoc(doc).splitlines()
    return [lines[i] for i in range(len(lines) - 1)
            if re.fullmatch(r"-+", lines[i + 1]) and len(lines[i + 1]) == len(lines[i])]


def test_every_public_function_is_checked():
    assert len(FUNCTIONS) >= 40 and "attention" in FUNCTIONS and "softmax" in FUNCTIONS


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpydoc_sections(name):
    doc = getattr(an, name).__doc__
    assert doc, name
    found = sections(doc)
    assert [s for s in found if s in SECTIONS] == SECTIONS, (name, found)
    assert "{" + "visibility}" not in doc and "{" + "shared}" not in doc
    # a one-line summary, then a blank line
    lines = inspect.cleandoc(doc).splitlines()
    assert lines[0].strip() and not lines[1].strip(), name


@pytest.mark.parametrize("name", FUNCTIONS)
def test_parameters_section_names_every_parameter(name):
    fn = getattr(an, name)
    doc = inspect.cleandoc(fn.__doc__)
    params = doc.split("Parameters\n----------\n")[1].split("\nReturns\n")[0]
    documented = set()
    for line in params.splitlines():
        if line and not line.startswith(" "):
            head = line.split(" : ")[0]
            documented.update(p.strip().lstrip("*") for p in head.split(","))
    for p in inspect.signature(fn).parameters:
        assert p in documented, f"{name}: parameter {p!r} is not documented"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_examples_run(name):
    fn = getattr(an, name)
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(fn, name, globs={"np": np, "an": an})
    assert tests and tests[0].examples, f"{name} has no examples"
    for t in tests:
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.failed == 0, f"{name}: {res.failed} example(s) failed"


def test_normalizer_docs_cover_the_registry():
    assert set(an.NORMALIZERS) <= set(NORMALIZER_DOCS)
    assert "stickbreaking" in NORMALIZER_DOCS
    for name, fn in an.NORMALIZERS.items():
        assert fn.__doc__ == NORMALIZER_DOCS[name]
        assert getattr(an, name) is fn


@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_have_text_signatures(name):
    sig = inspect.signature(getattr(an, name))
    expected = ["n"] if name == "set_num_threads" else []
    assert list(sig.parameters) == expected
    assert getattr(an, name).__doc__.strip()
