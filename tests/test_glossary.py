"""The glossary, the model table and the seed's sections: every term is taught somewhere, every number has
a source, every section of the seed has a chapter, and GPT-3's size follows from its configuration."""

import re
from pathlib import Path

import pytest

from fmcourse import glossary, references
from fmcourse.chapters import CHAPTERS, SEED_PARTS, SEED_SECTIONS, chapter_number, chapters_of, sections_of
from fmcourse.models import GPTConfig
from fmcourse.models.cost import parameter_counts

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {p.stem[:2]: p.read_text(encoding="utf-8") for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))}
NUMBERS = {chapter_number(c) for c in CHAPTERS}


def test_every_glossary_term_occurs_in_a_notebook():
    assert set(NOTEBOOKS) == NUMBERS, "every chapter has a notebook"
    text = "\n".join(NOTEBOOKS.values())
    missing = [t.english for t in glossary.TERMS if not t.regex.search(text)]
    assert not missing, f"glossary terms no notebook uses: {missing}"


def test_glossary_entries_are_complete_and_unique():
    names = [t.english.casefold() for t in glossary.TERMS]
    assert len(names) == len(set(names)), "a term is listed twice"
    for t in glossary.TERMS:
        assert t.english and t.definition and t.chapter in NUMBERS, t
        assert re.search(r"[\u4e00-\u9fff]", t.chinese) or t.chinese == t.english, f"{t.english}: no Chinese term"
        assert "\n" not in t.definition and len(t.definition) < 140, f"{t.english}: the definition is one line"
        t.regex  # compiles


def test_glossary_search():
    assert glossary.search("LoRA")[0].chinese == "低秩适配"
    assert [t.english for t in glossary.search("注意力")] == ["self-attention", "multi-head attention"]
    assert glossary.search("") == list(glossary.TERMS)
    assert glossary.search("  FINE-TUNING ")[0].english == "fine-tuning"  # case and spaces do not matter
    assert glossary.search("no such term anywhere") == []
    with pytest.raises(TypeError, match="query must be a str"):
        glossary.search(3)
    table = glossary.markdown_table(glossary.search("LoRA"))
    assert table.count("\n") == 2 and "| LoRA | 低秩适配 |" in table


def test_every_numbered_section_of_the_seed_maps_to_a_chapter():
    numbers = [s.number for s in SEED_SECTIONS]
    counts = {"1": 4, "2": 3, "3": 4, "4": 4, "5": 4, "6": 4, "7": 4, "8": 4, "9": 5}  # the seed's subsections
    assert numbers == [f"{part}.{i}" for part, n in counts.items() for i in range(1, n + 1)]
    assert list(SEED_PARTS) == list(counts)
    for s in SEED_SECTIONS:
        assert re.search(r"[\u4e00-\u9fff]", s.title), f"{s.number}: its Chinese title"
        assert s.chapters and set(s.chapters) <= NUMBERS, f"{s.number} maps to no chapter, or to one that is not there"
        assert chapters_of(s.number)
    assert {c.notebook[:2] for c in CHAPTERS} <= {n for s in SEED_SECTIONS for n in s.chapters}, \
        "every chapter covers some section of the seed"
    assert [s.number for s in sections_of("13_faq_and_resources")][:2] == ["4.4", "6.4"]
    with pytest.raises(ValueError, match="1.1 to 9.5"):
        chapters_of("10.1")


def test_gpt3_parameter_count_from_its_configuration():
    # Brown et al. 2020, Table 2.1: 96 layers, d_model 12,288, 96 heads, context 2,048; GPT-2's vocabulary.
    config = GPTConfig(vocab_size=50257, context_length=2048, n_layer=96, n_head=96, d_model=12288)
    total = sum(parameter_counts(config).values())
    assert abs(total / references.model("GPT-3").parameters - 1) < 0.01, total
    # GPT-2 XL (Radford et al. 2019, Table 2: 48 layers, width 1600, context 1024): the table says 1542M; the
    # released weights hold 1,557,611,200 numbers, which is what the formula gives: the table is 1% low.
    gpt2 = GPTConfig(vocab_size=50257, context_length=1024, n_layer=48, n_head=25, d_model=1600)
    assert sum(parameter_counts(gpt2).values()) == 1_557_611_200
    assert abs(1_557_611_200 / references.model("GPT-2").parameters - 1) < 0.02


def test_every_number_of_the_model_table_carries_a_source():
    for m in references.MODELS:
        assert m.source and re.search(r"(19|20)\d\d", m.source), f"{m.name}: cite the paper with its year"
        assert re.search(r"Table|section|abstract", m.source), f"{m.name}: say where in the paper the number stands"
        assert 2017 <= m.year <= 2026 and m.parameters > 1e6
        if m.training_tokens:
            assert "token" in m.source, f"{m.name}: the source of its training tokens"
        if m.reported_flops:
            assert "FLOPs" in m.source, f"{m.name}: the source of its training compute"
    names = [m.name for m in references.MODELS]
    assert len(names) == len(set(names)) and {"GPT-1", "GPT-2", "GPT-3", "BERT-Large", "T5-11B", "CLIP ViT-L/14",
                                                "DALL-E", "ViT-H/14"} <= set(names)
    with pytest.raises(ValueError, match="no model"):
        references.model("GPT-5")


def test_every_paper_names_the_chapter_that_implements_it():
    for paper in references.PAPERS:
        assert paper.chapter in NUMBERS, paper.title
    seed_papers = [p.title for p in references.PAPERS if p.in_seed]
    assert len(seed_papers) == 3, "the seed's three papers"
