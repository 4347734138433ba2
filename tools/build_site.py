"""Build the course as a static site, offline: every ready chapter executed, with its plots and
outputs, and an index page that links every chapter.

    python tools/build_site.py [OUT]      # what `make site` runs; OUT defaults to build/site

It writes a Jupyter Book (version 1, which builds with Sphinx and needs no network) into
build/site-src from notebooks/ and fmcourse/chapters.py, then builds its HTML into OUT. The notebooks
run headless (FMCOURSE_HEADLESS=1): live plots draw once and widgets show their first state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fmcourse.chapters import CHAPTERS, release  # noqa: E402


def index_page() -> str:
    """The site's front page: what the course is, and every chapter, linked when it is ready."""
    rows = ["| | chapter | seed section | CPU time |", "|---|---|---|---|"]
    for c in CHAPTERS:
        number = c.notebook[:2]
        title = f"[{c.title}]({c.notebook}.ipynb)" if c.status == "ready" else f"{c.title} *(in preparation)*"
        rows.append(f"| {number} | {title} | {c.seed} | {c.cpu_time} |")
    intro = (ROOT / "README.md").read_text(encoding="utf-8").split("\n\n")[1]
    return "\n\n".join([
        "# Foundation models, built", intro,
        "Every chapter below was run from top to bottom to make this site; to change and rerun it, open it in "
        "JupyterLab (`make lab`), on Binder or on Colab (the badges at the top of each chapter).",
        "\n".join(rows), ""])


def book_sources(folder: Path) -> list[str]:
    """Write the book's sources into ``folder``; returns the notebooks it contains (file stems)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    ready = [c.notebook for c in CHAPTERS if c.status == "ready"]
    for stem in ready:
        shutil.copy(ROOT / "notebooks" / f"{stem}.ipynb", folder / f"{stem}.ipynb")
    (folder / "index.md").write_text(index_page(), encoding="utf-8")
    (folder / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n"
                                     + "".join(f"  - file: {stem}\n" for stem in ready), encoding="utf-8")
    (folder / "_config.yml").write_text(f"""title: Foundation models, built
author: the fmcourse authors
only_build_toc_files: true
execute:
  execute_notebooks: force
  timeout: 600
  allow_errors: false
repository:
  url: {release(ROOT / "pyproject.toml").repository}
html:
  use_repository_button: false
  use_issues_button: false
launch_buttons:
  notebook_interface: jupyterlab
sphinx:
  config:
    nb_execution_raise_on_error: true
    html_show_copyright: false
""", encoding="utf-8")
    return ready


def main(out: Path) -> None:
    sources = ROOT / "build" / "site-src"
    ready = book_sources(sources)
    environment = os.environ | {"FMCOURSE_HEADLESS": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jupyter_book), "build", str(sources), "--path-output", str(out), "--keep-going"],
                   check=True, env=environment)
    html = out / "_build" / "html"
    missing = [stem for stem in ready if not (html / f"{stem}.html").is_file()]
    if missing:
        sys.exit(f"the site has no page for {missing}")
    print(f"the site: {html / 'index.html'} ({len(ready)} chapters)")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "build" / "site")
