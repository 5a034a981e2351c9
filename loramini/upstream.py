"""Warnings raised inside the libraries loramini calls that no loramini user can act on.

peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing` property inside `PeftModel.__init__`,
so every `get_peft_model` / `PeftModel.from_pretrained` prints a FutureWarning that only a new peft release fixes.
"""

from __future__ import annotations

import warnings

PEFT_DEPRECATION = ".*is_gradient_checkpointing"


def ignore_peft_deprecation() -> None:
    """Hide PEFT's deprecation FutureWarning (call inside `warnings.catch_warnings()`, or once per notebook)."""
    warnings.filterwarnings("ignore", message=PEFT_DEPRECATION, category=FutureWarning)
