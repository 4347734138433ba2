"""Every notebook exists as a jupytext percent .py and a paired .ipynb, with the same cells, no outputs."""

import json
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
STEMS = sorted({p.stem for p in NOTEBOOKS.glob("*.py")} | {p.stem for p in NOTEBOOKS.glob("*.ipynb")})


def cells(path: Path) -> list[tuple[str, str]]:
    notebook = jupytext.read(path)
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_there_are_notebooks():
    assert STEMS, f"no notebooks found in {NOTEBOOKS}"


@pytest.mark.parametrize("stem", STEMS)
def test_pair_is_complete_and_in_sync(stem):
    py, ipynb = NOTEBOOKS / f"{stem}.py", NOTEBOOKS / f"{stem}.ipynb"
    for path, other in ((py, ipynb), (ipynb, py)):
        assert path.exists(), f"{other.name} has no pair {path.name}: run `make sync`"
    text_cells, notebook_cells = cells(py), cells(ipynb)
    for index, (a, b) in enumerate(zip(text_cells, notebook_cells)):
        assert a == b, (
            f"notebook {stem}: cell {index} differs between {py.name} and {ipynb.name}; "
            f"edit one side only, then run `make sync`.\n--- {py.name}:\n{a[1][:300]}\n--- {ipynb.name}:\n{b[1][:300]}"
        )
    assert len(text_cells) == len(notebook_cells), (
        f"notebook {stem}: {py.name} has {len(text_cells)} cells, {ipynb.name} has "
        f"{len(notebook_cells)}; run `make sync`"
    )


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name} has outputs in code cells {dirty}: run `make sync` to clear them"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.py")), ids=lambda p: p.name)
def test_header_names_kernel_and_pairing(path):
    metadata = jupytext.read(path).metadata
    assert metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: no python3 kernelspec in header"
    assert metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", f"{path.name}: not paired ipynb,py:percent"
