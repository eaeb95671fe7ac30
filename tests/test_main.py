"""python -m attnnorm: the report runs, covers every normalizer and checks its options."""
import math

import pytest

import attnnorm as an
from attnnorm.__main__ import main


def report(capsys, *args):
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_report_covers_every_normalizer(capsys):
    out = report(capsys, "--heads", "2", "--n", "16", "--m", "24", "--d", "8", "--repeat", "1")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.split() and line.split()[0] in an.NORMALIZERS}
    assert set(rows) == set(an.NORMALIZERS)
    # the row-stochastic normalizers report a mean row sum of 1
    for name in ("softmax", "sparsemax", "entmax", "sinkhorn", "stochastic_softmax"):
        assert float(rows[name][0]) == pytest.approx(1.0, abs=1e-4)
    # entropy is defined for non-negative weights only
    assert math.isnan(float(rows["nap"][1])) and not math.isnan(float(rows["softmax"][1]))


def test_report_options(capsys):
    out = report(capsys, "--n", "8", "--d", "4", "--heads", "1", "--dtype", "float64",
                 "--causal", "--repeat", "1", "--normalizers", "softmax,relu")
    assert "float64" in out and "causal" in out
    names = [line.split()[0] for line in out.splitlines() if line.split()]
    assert "softmax" in names and "relu" in names and "sigmoid" not in names


@pytest.mark.parametrize("args", [["--normalizers", "nope"], ["--n", "0"], ["--dtype", "int8"]])
def test_report_rejects_bad_options(args):
    with pytest.raises(SystemExit):
        main(args)
