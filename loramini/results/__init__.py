"""The measured results the notebooks read, shipped inside the package (so Colab and `pip install` have them).

These are copies of ``benchmarks/results/<name>.json`` (where the benchmark scripts write them);
``tests/test_notebooks_meta.py`` fails while a copy differs from its original. Refresh them with
``make results`` after rerunning a benchmark.
"""

from __future__ import annotations

import json
from importlib import resources

# name -> what produced it (the file itself holds the command, the settings and a note)
SHIPPED = {
    "accuracy-vs-params": "all-MiniLM-L6-v2 on GLUE SST-2 and STS-B, every method at its tuned rate, 3 seeds",
    "accuracy-vs-params-smoke": "the tiny RoBERTa on the offline synthetic-rank task, the same protocol",
    "budget-curves": "all-MiniLM-L6-v2 at 1x, 4x and 16x the protocol's budget, a pair task never tuned on, 3 seeds",
    "shape-rates": "all-MiniLM-L6-v2 on SST-2 at 1x: a rate tuned for each r and a = b, one axis at a time, 3 seeds",
    "rates-4x-sst2": "all-MiniLM-L6-v2 on SST-2 at 4x: LoRA-Mini's and LoRA's rates tuned again, and their defaults",
    "rates-4x-stsb": "all-MiniLM-L6-v2 on STS-B at 4x: LoRA's rate tuned again, and its default",
    "decoder-runs": "SmolLM2-135M-Instruct fine-tuned on SST-2 as text on a shared CPU (benchmarks/decoder_runs.py)",
}


def path(name: str):
    """The shipped file for ``name`` (a key of ``SHIPPED``), as an importlib.resources Traversable."""
    if name not in SHIPPED:
        raise KeyError(f"no shipped results named {name!r}; choose one of {sorted(SHIPPED)}")
    return resources.files(__name__) / f"{name}.json"


def load(name: str) -> dict:
    """The results file ``name`` as a dict (``cells``, ``lr_sweeps``, ``note``, the command that made it)."""
    return json.loads(path(name).read_text(encoding="utf-8"))
