#!/usr/bin/env python
"""Point every link to the project's GitHub repository at OWNER/NAME (default: the placeholder in the package).

    python tools/set_repository.py my-org/loramini

The repository is set in one place, ``REPOSITORY`` in loramini/notebook.py; this rewrites that constant and
its copies (the Colab and Binder badges, the notebooks' Colab install cell, README and docs links), which
tests/test_notebooks_meta.py checks against it. Commit the result (and re-run ``python -m loramini.course
student`` only if you changed solution notebooks otherwise).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUFFIXES = {".py", ".ipynb", ".md", ".txt", ".toml", ".yml", ".cfg"}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", argv[0]):
        print("usage: python tools/set_repository.py OWNER/NAME   (e.g. my-org/loramini)", file=sys.stderr)
        return 2
    new = argv[0]
    sys.path.insert(0, str(REPO))
    from loramini.notebook import REPOSITORY as old

    if new == old:
        print(f"already {old}")
        return 0
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    changed = 0
    for name in tracked.splitlines():
        path = REPO / name
        if path.suffix not in SUFFIXES or path.resolve() == Path(__file__).resolve() or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if old in text:
            path.write_text(text.replace(old, new), encoding="utf-8")
            changed += 1
            print(f"{name}: {text.count(old)} link(s)")
    print(f"{old} -> {new} in {changed} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
