"""Run every notebook (or those named) and tabulate wall time, slowest cell and peak memory.

    python bench/notebooks.py [notebooks/02_*.ipynb ...]

Writes bench/results/notebooks.md and prints it. Budgets on a 2-core laptop CPU: a notebook under
90 s, no cell over 20 s, peak memory under 1.5 GB.
"""

import datetime
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "notebooks.md"

PEAK_MEMORY_CELL = """\
import resource, sys
_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(_peak / (2**20 if sys.platform == "darwin" else 2**10))  # MB
"""


def cell_seconds(cell) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def run(path: Path) -> tuple[float, float, int, float]:
    """Wall seconds, slowest cell seconds and its index, peak resident memory in MB."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PEAK_MEMORY_CELL))
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - start
    times = [cell_seconds(c) for c in notebook.cells[:-1]]
    slowest = max(range(len(times)), key=times.__getitem__)
    peak_mb = float(notebook.cells[-1].outputs[0]["text"])
    return wall, times[slowest], slowest, peak_mb


def earlier_rows() -> dict[str, str]:
    """Rows of the last table, by notebook, so measuring a few notebooks keeps the others' rows."""
    if not RESULTS.exists():
        return {}
    lines = [line for line in RESULTS.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    return {line.split("|")[1].strip(): line for line in lines[1:]}


def main(paths: list[Path]) -> None:
    os.environ["FMCOURSE_HEADLESS"] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the test suite (conftest.py)
    table = earlier_rows()
    for path in paths:
        wall, slowest, index, peak = run(path)
        table[path.stem] = f"| {path.stem} | {wall:.1f} | {slowest:.1f} (cell {index}) | {peak:.0f} |"
        print(table[path.stem], flush=True)
    rows = ["| notebook | wall time (s) | slowest cell (s) | peak memory (MB) |", "|---|---:|---:|---:|"]
    rows += [table[name] for name in sorted(table)]
    import torch

    header = (f"Last measured {datetime.date.today()} on {platform.machine()} with {os.cpu_count()} cores, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads.\n\n")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(header + "\n".join(rows) + "\n")
    print("\n" + header + "\n".join(rows))


if __name__ == "__main__":
    given = [Path(p) for p in sys.argv[1:]]
    main(given or sorted((ROOT / "notebooks").glob("*.ipynb")))
