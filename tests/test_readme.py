"""The README's code runs as written, and CI runs the README's commands."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def blocks(lang):
    text = open(README, encoding="utf-8").read()
    return re.findall(r"^```" + lang + r"\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_python_blocks_run_in_order():
    code = blocks("python")
    assert len(code) >= 4, "expected the normalizers, attention, linear and diagnostics blocks"
    namespace = {"__name__": "readme"}
    for i, block in enumerate(code):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"README python block {i + 1} raised {type(exc).__name__}: {exc}\n{block}")


def readme_commands():
    """The non-comment lines of the README's first bash block."""
    first = blocks("bash")[0]
    return [ln.strip() for ln in first.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_readme_commands():
    install, test = readme_commands()
    assert install.startswith("pip install -e . && python -m attnnorm")
    # the test extra goes into the same editable install (not a second, non-editable one)
    assert test.startswith('pip install -e ".[test]"') and test.endswith("pytest -q")


def test_ci_runs_exactly_the_readme_commands():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    for cmd in readme_commands():
        assert cmd in lines, f".ci/run does not run the README command {cmd!r}"
    assert lines.index(readme_commands()[0]) < lines.index(readme_commands()[1])
    assert any(ln.startswith("python3 -m venv") for ln in lines)
