"""The course notebooks' shared start: where the repository lives, the device, smoke mode.

Every notebook opens with the same two cells: on Colab, pip-install this package from ``REPOSITORY``
(everywhere else it is installed already), then one call::

    device, SMOKE = loramini.notebook.setup()

Nothing heavy is imported here until ``setup()`` runs (torch then), so the module is cheap to import.
"""

from __future__ import annotations

import os
import sys

# The GitHub repository (owner/name) that badges, the Colab install cell and the README point to. This is the
# one place to change it; `python tools/set_repository.py OWNER/NAME` rewrites the copies in the notebooks
# and the README, and tests/test_notebooks_meta.py fails while any of them differs.
REPOSITORY = "loramini-course/loramini"
REPOSITORY_URL = f"https://github.com/{REPOSITORY}"
# What the Colab cell installs: the package with the notebooks' extra ([lab]: matplotlib, pandas, widgets).
INSTALL_SPEC = f"loramini[lab] @ git+{REPOSITORY_URL}.git"

SMOKE_VARIABLE = "LORAMINI_SMOKE"


def in_colab() -> bool:
    """True inside Google Colab (its runtime imports ``google.colab`` before any cell runs)."""
    return "google.colab" in sys.modules


def smoke_mode(environ=None) -> bool:
    """``LORAMINI_SMOKE=1``: every cell runs, on tiny sizes (CI, Binder). Unset or ``0``: the real sizes."""
    value = (os.environ if environ is None else environ).get(SMOKE_VARIABLE, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{SMOKE_VARIABLE}={value!r}: use 1 (smoke mode) or 0 (the real sizes)")
    return value == "1"


def pick_device():
    """The device the notebooks compute on: CUDA when there is one, else the CPU.

    These are the devices ``loramini.train.train`` runs on (accelerate with ``cpu=True`` when CUDA is
    missing), so a notebook never sizes its runs for a device (such as Apple's MPS) that training ignores.
    """
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup(*, verbose: bool = True):
    """Start a course notebook: returns ``(device, smoke)`` and prints one line saying which they are."""
    import torch

    from . import __version__
    from .upstream import ignore_peft_deprecation

    smoke, device = smoke_mode(), pick_device()
    ignore_peft_deprecation()  # the notebooks call peft directly, outside the package's own filters
    if verbose:
        print(f"loramini {__version__} | torch {torch.__version__} | device: {device} | smoke mode: {smoke}")
        if in_colab() and device.type == "cpu":
            print("Colab without a GPU: Runtime > Change runtime type > T4 GPU makes notebooks 03 and 04 fast.")
    return device, smoke
