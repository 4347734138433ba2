"""The course map: one entry per chapter, shown by notebook 00 and mirrored in README.md (tested)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chapter:
    notebook: str  # file stem in notebooks/
    title: str
    seed: str  # section(s) of the overview this chapter covers, with their Chinese titles
    status: str  # "ready" or "planned"
    cpu_time: str = "—"  # wall time on a 2-core laptop CPU, as measured by `make bench`


CHAPTERS = (
    Chapter("00_setup", "Setting up and finding your way", "5.1 开发环境搭建", "ready", "3 s"),
    Chapter("01_foundation_models", "What a foundation model is", "1 背景介绍, 2 核心概念与联系", "planned"),
    Chapter("02_losses_and_backprop", "Losses and backpropagation", "4.1 数学模型构建, 4.2 公式推导过程", "ready", "10 s"),
    Chapter("03_transformer", "The Transformer, from attention to a GPT", "3.1 算法原理概述, 4.3 案例分析与讲解", "ready", "15 s"),
    Chapter("04_self_supervised_pretraining", "Self-supervised pretraining", "3.1 自监督学习, 3.2 算法步骤 1–3", "ready", "36 s"),
    Chapter("05_contrastive_pretraining", "Contrastive pretraining", "3.1 对比学习", "ready", "20 s"),
    Chapter("06_fine_tuning", "Fine-tuning and evaluation", "3.2 算法步骤 4–5, 9.3 如何进行基础模型的微调", "ready", "38 s"),
    Chapter("07_applications_language", "Applications: language", "6.1 自然语言处理", "planned"),
    Chapter("08_applications_vision", "Applications: vision", "6.2 计算机视觉", "planned"),
    Chapter("09_applications_speech", "Applications: speech", "6.3 语音识别", "planned"),
    Chapter("10_applications_recommendation", "Applications: recommendation", "3.4 算法应用领域 (推荐系统)", "planned"),
    Chapter("11_frontiers_and_challenges", "Frontiers and challenges", "1.2 研究现状, 8 未来发展趋势与挑战", "planned"),
    Chapter("12_faq_and_resources", "FAQ, resources and glossary", "7 工具和资源推荐, 9 常见问题与解答", "planned"),
)


def markdown_table() -> str:
    """The chapter table as Markdown (README.md carries exactly this table)."""
    rows = ["| notebook | chapter | seed section | status | CPU time |", "|---|---|---|---|---|"]
    rows += [f"| `{c.notebook}` | {c.title} | {c.seed} | {c.status} | {c.cpu_time} |" for c in CHAPTERS]
    return "\n".join(rows)
