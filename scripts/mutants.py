"""Mutation testing of the pure modules (``make mutants``, by hand): the score per module.

mutmut 3 (configured in ``pyproject.toml``: which modules, which tests) changes each module one small
edit at a time (an operator, a constant, a comparison) and runs the broker-free tests that reach the
changed function; a mutant is killed when one of them goes red. The score of a module is its killed
mutants over all its mutants, less those named equivalent in ``scripts/equivalent_mutants.txt`` (a
mutant no test can tell apart from the original, each with why). ``--no-run`` reads the last run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "scripts" / "equivalent_mutants.txt"
KILLED = {"killed", "timeout", "segfault"}  # a mutant that hangs or crashes the tests is caught too
LINE = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")


def equivalent() -> dict[str, str]:
    """Mutant name -> why no test can tell it from the original (``name  # why`` per line)."""
    if not EQUIVALENT.exists():
        return {}
    named = {}
    for line in EQUIVALENT.read_text().splitlines():
        name, _, why = line.partition("#")
        if name.strip():
            named[name.strip()] = why.strip()
    return named


def module_of(mutant: str) -> str:
    """``vvv_core.domain.scoring.x_score__mutmut_3`` -> ``vvv_core/domain/scoring.py``."""
    dotted = mutant.split("__mutmut_")[0].rsplit(".", 1)[0]
    return dotted.replace(".", "/") + ".py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="summarise the last run only")
    args = parser.parse_args()
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    if not args.no_run:
        subprocess.run([mutmut, "run"], cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    listed = subprocess.run([mutmut, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True).stdout
    named = equivalent()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in listed.splitlines():
        if not (match := LINE.match(line)):
            continue
        mutant, status = match.groups()
        module = module_of(mutant)
        if mutant in named:
            counts[module]["equivalent"] += 1
        elif status in KILLED:
            counts[module]["killed"] += 1
        else:
            counts[module]["alive"] += 1
            survivors[module].append(f"{mutant}: {status}")
    print(f"{'module':<36}{'mutants':>8}{'killed':>8}{'equiv.':>8}{'alive':>7}{'score':>8}")
    worst = 100.0
    for module, c in sorted(counts.items()):
        judged = c["killed"] + c["alive"]
        score = 100.0 * c["killed"] / judged if judged else 100.0
        worst = min(worst, score)
        print(f"{module:<36}{sum(c.values()):>8}{c['killed']:>8}{c['equivalent']:>8}{c['alive']:>7}{score:>7.1f}%")
    for module, names in sorted(survivors.items()):
        print(f"\n{module}: alive (`mutmut show NAME` shows the change)")
        print("\n".join(f"  {n}" for n in names))
    return 0 if worst >= 90 else 1


if __name__ == "__main__":
    sys.exit(main())
