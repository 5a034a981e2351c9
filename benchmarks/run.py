"""Run the LoRA-Mini benchmarks from a checkout: the same as `python -m loramini bench`.

    python benchmarks/run.py --quick                    # < 2 min on 2 CPU cores
    python benchmarks/run.py --device cuda              # bf16 on a GPU
    python benchmarks/run.py --help
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package next to this folder

from loramini.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
