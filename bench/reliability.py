"""The bad-input catalogue of tests/test_bad_inputs.py, run and counted by outcome.

    python bench/reliability.py

Each case gives the package a bad (or easily misread) input and expects either a clear error (the
right exception type, a message naming the problem, nothing on disk lost) or the documented
behaviour. Writes bench/results/reliability.md (the counts by outcome and by area, then every case
with the message it got) and prints the counts; exits with status 1 if any case failed.
"""

import collections
import datetime
import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("FMCOURSE_HEADLESS", "1")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "reliability.md"
OUTCOMES = ("clear error", "documented behaviour", "FAILED")


def catalogue():
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "tests" / "test_bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> int:
    module = catalogue()
    rows = [(case, *module.outcome_text(case)) for case in module.CASES]
    counts = collections.Counter(result for _, result, _ in rows)
    areas = list(dict.fromkeys(case.area for case in module.CASES))
    by_area = {area: collections.Counter(result for case, result, _ in rows if case.area == area) for area in areas}

    lines = [
        "# Bad inputs: how the package answers them",
        "",
        f"`python bench/reliability.py`, {datetime.date.today().isoformat()}: the {len(rows)} cases of "
        "`tests/test_bad_inputs.py`. A *clear error* is the expected exception type with a message that "
        "names the problem (and, where files are involved, nothing on disk lost); a *documented behaviour* "
        "is an input that is allowed but easy to misread, checked against what the docstring promises.",
        "",
        "| outcome | cases |",
        "|---|---:|",
        *(f"| {name} | {counts[name]} |" for name in OUTCOMES),
        f"| total | {len(rows)} |",
        "",
        "| area | " + " | ".join(OUTCOMES) + " |",
        "|---|" + "---:|" * len(OUTCOMES),
        *(f"| {area} | " + " | ".join(str(by_area[area][name]) for name in OUTCOMES) + " |" for area in areas),
        "",
        "## Every case",
        "",
        "| area | input | outcome | message |",
        "|---|---|---|---|",
    ]
    for case, result, detail in rows:
        message = " ".join(detail.split())
        message = (message[:157] + "...") if len(message) > 160 else message
        lines.append(f"| {case.area} | {case.name} | {result} | {message.replace('|', '/')} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(", ".join(f"{name}: {counts[name]}" for name in OUTCOMES) + f" (of {len(rows)}); wrote {RESULTS}")
    for case, result, detail in rows:
        if result == "FAILED":
            print(f"FAILED {case.id}: {detail}")
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
