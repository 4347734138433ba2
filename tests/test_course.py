"""The course as a whole: README mirrors the chapter map, and the package keeps its floors (a module
imports only from floors below it). Installation paths are tested in test_install.py."""

import ast
from pathlib import Path

from packaging.requirements import Requirement

from fmcourse.chapters import CHAPTERS, markdown_table

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def test_readme_carries_the_chapter_table():
    assert markdown_table() in (ROOT / "README.md").read_text(), (
        "README.md's chapter table differs from fmcourse/chapters.py: paste markdown_table() into it"
    )


def test_every_ready_chapter_has_a_notebook_and_every_notebook_a_chapter():
    stems = {p.stem for p in NOTEBOOKS}
    ready = {c.notebook for c in CHAPTERS if c.status == "ready"}
    assert ready == stems & {c.notebook for c in CHAPTERS}, "a chapter marked ready has no notebook, or vice versa"
    assert stems <= {c.notebook for c in CHAPTERS}, f"notebooks missing from chapters.py: {stems - {c.notebook for c in CHAPTERS}}"


FLOORS = {
    "env": 0, "chapters": 0, "shipped": 0, "glossary": 0, "references": 0, "data": 1, "distributed": 1,
    "tokenizers": 2, "objectives": 2, "metrics": 2, "decoding": 2, "audio": 2, "boxes": 2,
    "nn": 3, "models": 4,
    "train": 5, "checkpoints": 5, "finetune": 5, "export": 5, "compress": 5,
    "interpret": 5, "fairness": 5, "privacy": 5, "viz": 5,
    "pretrain": 6, "recommend": 6,
    "widgets": 6, "exercises": 6,
    "scaling": 7,
}


def imported_modules(tree: ast.AST) -> set[str]:
    """The fmcourse modules (first component after `fmcourse.`) that a module imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, "use absolute imports (from fmcourse.x import y) so floors stay visible"
            if node.module == "fmcourse":
                found |= {alias.name for alias in node.names}
            elif node.module and node.module.startswith("fmcourse."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("fmcourse.")}
    return found


def test_modules_import_only_from_lower_floors():
    package = ROOT / "fmcourse"
    for path in package.rglob("*.py"):
        where = f"fmcourse/{path.relative_to(package)}"
        top = path.relative_to(package).parts[0].removesuffix(".py")
        if top == "__init__":
            continue
        assert top in FLOORS, f"{where}: give module {top!r} a floor in FLOORS"
        for name in imported_modules(ast.parse(path.read_text())) - {top}:
            assert FLOORS[name] < FLOORS[top], f"{where} (floor {FLOORS[top]}) imports {name} (floor {FLOORS[name]})"


def test_tested_pins_satisfy_the_package_ranges():
    import importlib.metadata

    ranges = {Requirement(r).name: Requirement(r).specifier for r in importlib.metadata.requires("fmcourse")}
    pins = [Requirement(line) for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert "torch" in {pin.name for pin in pins}, "requirements.txt must pin torch (an unpinned torch pulls a CUDA build)"
    for pin in pins:
        version = str(pin.specifier).removeprefix("==")
        assert str(pin.specifier).startswith("=="), f"requirements.txt: pin {pin.name} exactly (==)"
        if pin.name in ranges:
            assert ranges[pin.name].contains(version), f"{pin.name}=={version} is outside pyproject's {ranges[pin.name]}"
