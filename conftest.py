"""Test-suite settings (for tests/ and the notebooks nbval runs): notebooks run headless, and each notebook's wall time is reported."""

import os
from collections import defaultdict
from pathlib import Path

import pytest

# Read by the notebook kernels nbval starts: live plots and progress bars stay quiet.
os.environ["FMCOURSE_HEADLESS"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
# OpenMP threads that spin without bound while waiting slow torch down when the machine is busy, and
# passive waiting costs 1.7x on an idle one; a bounded spin is good in both (bench/results/threads.md).
os.environ.setdefault("GOMP_SPINCOUNT", "100000")

_notebook_seconds: dict[str, float] = defaultdict(float)
_slowest_cell: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration
        if report.when == "call":
            _slowest_cell[path] = max(_slowest_cell[path], report.duration)


def pytest_terminal_summary(terminalreporter) -> None:
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook wall time")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(
            f"{Path(path).name:<40} {seconds:6.1f} s   (slowest cell {_slowest_cell[path]:.1f} s)"
        )
