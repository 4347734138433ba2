"""The ways into the course: the notebook headers made from pyproject.toml, the Colab setup cell, the
package's metadata against the tested pins, the environment files, the virtual-environment script,
and the Colab path itself (a wheel installed outside the repository)."""

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fmcourse.chapters import CHAPTERS, EXTRA_MODULES, Release, chapter, release, setup_cell, write_headers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402
import setup_venv  # noqa: E402
from wheel_venv import wheel_venv  # noqa: E402

RELEASE = release(ROOT / "pyproject.toml")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_every_notebook_header_is_made_from_pyproject(tmp_path):
    for path in NOTEBOOKS:
        shutil.copy(path, tmp_path / path.name)
    changed = write_headers(tmp_path, RELEASE)
    assert changed == [], f"{[p.name for p in changed]}: badges or setup cell out of date: run `make badges`"
    for path in NOTEBOOKS:
        assert f"/{RELEASE.github_path}/blob/{RELEASE.tag}/notebooks/{path.stem}.ipynb" in path.read_text()


def test_headers_install_a_release_tag_never_a_branch():
    assert re.fullmatch(r"v\d+\.\d+\.\d+", RELEASE.tag)
    for c in CHAPTERS:
        assert "@main" not in setup_cell(c, RELEASE) and f"@{RELEASE.tag}\"" in setup_cell(c, RELEASE)
    with pytest.raises(ValueError, match="must be https://github.com/OWNER/NAME"):
        Release("https://example.org/course", "v1.0.0").github_path


@pytest.mark.parametrize("notebook", ["00_setup", "04_self_supervised_pretraining", "06_fine_tuning"])
@pytest.mark.parametrize("missing", [None, "fmcourse", "extra"])
def test_setup_cell_installs_what_the_chapter_needs_only_when_missing(notebook, missing, monkeypatch):
    c = chapter(notebook)
    needed = ["fmcourse"] + [m for extra in c.extras for m in EXTRA_MODULES[extra]]
    gone = {"fmcourse": "fmcourse", "extra": needed[-1] if c.extras else None}.get(missing)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == gone else real_find_spec(name, *a))
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda args: calls.append(args))
    exec(compile(setup_cell(c, RELEASE), "setup cell", "exec"), {})
    if gone is None:
        assert calls == [], "nothing is installed where everything is there"
        return
    (args,) = calls
    assert args[:4] == [sys.executable, "-m", "pip", "install"] and len(args) == 5, "no --upgrade, no --quiet"
    requirement = Requirement(args[-1])  # one quoted argument: no shell redirection of `>=` possible
    assert requirement.name == "fmcourse" and requirement.extras == set(c.extras)
    assert requirement.url == f"git+{RELEASE.repository}@{RELEASE.tag}"


def test_every_first_code_cell_opens_with_the_setup_cell():
    import jupytext

    for path in NOTEBOOKS:
        first = next(cell.source for cell in jupytext.read(path).cells if cell.cell_type == "code")
        assert first.startswith(setup_cell(chapter(path.stem), RELEASE) + "\nfrom fmcourse import env\n"), path.name


# --- the package's metadata and the tested versions ----------------------------------------------

def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {Requirement(line).name: line.split("==")[1] for line in lines if line.strip() and not line.startswith("#")}


def test_every_tested_pin_is_a_dependency_or_an_extra_of_the_package():
    declared = {Requirement(r).name.lower() for r in importlib.metadata.requires("fmcourse")}
    undeclared = {name for name in pins() if name.lower() not in declared}
    assert not undeclared, f"requirements.txt pins {sorted(undeclared)}, which pyproject.toml does not declare"


def test_python_floor_is_one_number_everywhere():
    floor = ".".join(map(str, setup_venv.MINIMUM))
    assert importlib.metadata.metadata("fmcourse")["Requires-Python"] == f">={floor}"
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == f"python-{floor}"
    assert f"python={floor}" in (ROOT / "environment.yml").read_text()
    assert sys.version_info[:2] >= setup_venv.MINIMUM


def test_conda_and_binder_install_the_tested_versions_with_the_cpu_torch():
    conda = (ROOT / "environment.yml").read_text()
    binder = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert "- -r requirements.txt" in conda and f"--extra-index-url {setup_venv.CPU_INDEX}" in conda
    assert "-r ../requirements.txt" in binder and f"--extra-index-url {setup_venv.CPU_INDEX}" in binder
    assert "fmcourse[course]" in conda or ".[course]" in conda
    assert "[course]" in (ROOT / "binder" / "postBuild").read_text()


# --- tools/setup_venv.py -------------------------------------------------------------------------

@pytest.mark.parametrize("system, gpu, build, expected", [
    ("Linux", False, "auto", "CPU build"), ("Linux", True, "auto", "default build"),
    ("Darwin", False, "auto", "default build"), ("Linux", True, "cpu", "CPU build"),
    ("Linux", False, "default", "default build")])
def test_torch_build_follows_the_machine(system, gpu, build, expected, monkeypatch):
    monkeypatch.setattr(setup_venv.platform, "system", lambda: system)
    monkeypatch.setattr(setup_venv, "has_nvidia_gpu", lambda: gpu)
    monkeypatch.setenv("TORCH_BUILD", build)
    arguments, which = setup_venv.torch_choice()
    assert expected in which
    assert (setup_venv.CPU_INDEX in arguments) == (expected == "CPU build")
    monkeypatch.setenv("TORCH_BUILD", "cuda12")
    with pytest.raises(SystemExit, match="TORCH_BUILD must be auto, cpu or default"):
        setup_venv.torch_choice()


def test_a_broken_or_old_virtual_environment_is_recognised(tmp_path):
    assert "is missing" in setup_venv.problem_with(tmp_path / "nothing")
    fake = tmp_path / "old" / "bin"
    fake.mkdir(parents=True)
    (fake / "python").write_text("#!/bin/sh\necho 3.10\n")
    (fake / "python").chmod(0o755)
    assert "uses Python 3.10" in setup_venv.problem_with(tmp_path / "old")
    (fake / "python").write_text("#!/bin/sh\necho 'No module named pip' >&2; exit 1\n")
    assert "does not run or has no pip" in setup_venv.problem_with(tmp_path / "old")
    assert setup_venv.problem_with(Path(sys.prefix)) is None, "the environment running the tests is fine"


# --- the Colab path: a wheel, installed outside the repository ------------------------------------

def test_the_wheel_installed_outside_the_repository_carries_the_shipped_models(tmp_path):
    python = wheel_venv(tmp_path / "colab")
    outside = tmp_path / "student"
    outside.mkdir()
    (outside / "cell.py").write_text(setup_cell(chapter("06_fine_tuning"), RELEASE) + """
import fmcourse
from fmcourse import shipped
from fmcourse.pretrain import load_shipped, sample
model, tokenizer = load_shipped("gpt_pydoc_char")
print("package:", fmcourse.__file__)
print("encoder:", shipped.path("simclr_digits.safetensors").stat().st_size)
print("sample:", repr(sample(model, tokenizer, "The ", length=20, seed=0)))
""")
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"FMCOURSE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([str(python), "cell.py"], cwd=outside, capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    assert "Installing" not in result.stdout, "everything chapter 06 needs is there: nothing to install"
    package = re.search(r"package: (.*)", result.stdout).group(1)
    assert Path(package).is_relative_to(tmp_path / "colab" / "venv"), "the wheel's copy, not the repository's"
    size = (ROOT / "fmcourse" / "shipped" / "simclr_digits.safetensors").stat().st_size
    assert f"encoder: {size}" in result.stdout and "sample: 'The " in result.stdout
    assert not (tmp_path / "cache").exists(), "nothing rebuilt into the cache"


def test_slides_open_at_sections_and_skip_the_setup_cell():
    from fmcourse.chapters import mark_slides

    text = ("# %% [markdown]\n# # Title\n\n# %%\n# Setup: install\nx = 1\n\n# %% [markdown]\n# ## 1. A section\n\n"
            "# %%\ny = 2\n\n# %% [markdown] slideshow={\"slide_type\": \"slide\"}\n# More prose\n")
    marked = mark_slides(text)
    kinds = [line.partition("slide_type\": \"")[2].rstrip("\"}") or "-" for line in marked.splitlines()
             if line.startswith("# %%")]
    assert kinds == ["slide", "skip", "slide", "-", "subslide"]
    assert mark_slides(marked) == marked, "marking twice changes nothing"


def test_the_site_lists_and_links_every_chapter(tmp_path):
    ready = build_site.book_sources(tmp_path / "book")
    assert ready == [c.notebook for c in CHAPTERS if c.status == "ready"]
    toc = (tmp_path / "book" / "_toc.yml").read_text()
    index = (tmp_path / "book" / "index.md").read_text()
    for c in CHAPTERS:
        assert (f"- file: {c.notebook}" in toc) == (c.status == "ready")
        assert (f"]({c.notebook}.ipynb)" in index) == (c.status == "ready") and c.title in index
        assert (c.status != "ready") or (tmp_path / "book" / f"{c.notebook}.ipynb").is_file()
