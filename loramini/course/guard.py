"""In-kernel guard against monkeypatching (the nbgrader flow's only defence; the package grader judges in a fresh
interpreter instead, see `judge`)."""

from __future__ import annotations

import ast
import sys
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .notebook import Exercise


class _Guard:
    """Undoes a submission's monkeypatching before each exercise and each check (runs inside the kernel).

    Snapshots the attributes of torch, torch.nn.functional, torch.Tensor, nn.Module, nn.Linear, math, loramini,
    loramini.layer and LoRAMiniLinear before any submitted code runs; `restore` puts back whatever changed,
    re-imports loramini.checks (importlib.reload) and rebinds the notebook's names for it."""

    def __init__(self, namespace: dict):
        import builtins
        import importlib
        import math

        import torch
        import torch.nn.functional

        import loramini
        import loramini.ablation  # what the re-deriving checks train with (04's run tables): cheap, lazy imports
        import loramini.checks
        import loramini.layer
        import loramini.train

        self._ns, self._reload, self._modules = namespace, importlib.reload, sys.modules
        self._checks, self._package = loramini.checks, loramini
        # Every loramini module but the checks (reloaded instead) and this course package (its own state).
        ours = [module for name, module in sorted(sys.modules.items()) if module is not None
                and name.startswith("loramini.") and not name.startswith(("loramini.checks", "loramini.course"))]
        targets = [torch, torch.nn.functional, math, builtins, loramini, *ours]
        # Attributes added later are removed only from the layer classes: torch may cache things on its own types.
        classes = [(torch.Tensor, False), (torch.nn.Module, False), (torch.nn.Linear, True),
                   (loramini.layer.LoRAMiniLinear, True)]
        self._saved = [(obj, dict(vars(obj)), False) for obj in targets] + \
                      [(cls, dict(vars(cls)), prune) for cls, prune in classes]

    def restore(self, bindings: dict = None) -> None:
        """`bindings`: {notebook name: "checks" | "loramini" | a check function's name} to rebind."""
        missing = object()
        for obj, saved, is_class in self._saved:
            current = vars(obj)
            for key, value in saved.items():
                if current.get(key, missing) is not value:
                    try:
                        setattr(obj, key, value)
                    except (AttributeError, TypeError):
                        pass
            if is_class:
                for key in set(current) - set(saved):
                    try:
                        delattr(obj, key)
                    except (AttributeError, TypeError):
                        pass
        self._modules["loramini"] = self._package
        self._modules["loramini.checks"] = self._checks
        self._reload(self._checks)
        self._package.checks = self._checks
        for name, what in (bindings or {}).items():
            self._ns[name] = (self._checks if what == "checks" else self._package if what == "loramini"
                              else getattr(self._checks, what))


def _check_bindings(ex: Exercise) -> dict:
    """Names the exercise's check lines use to reach loramini.checks: {"checks": "checks"}, {"check_x": "check_x"}."""
    found = {}
    try:
        tree = ast.parse("\n".join(line for _, stmts in ex.after for line in stmts if not line[:1].isspace()))
    except SyntaxError:
        return {"checks": "checks"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("check_"):
            base = node.value
            if isinstance(base, ast.Name):
                found[base.id] = "checks"
            elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.attr == "checks":
                found[base.value.id] = "loramini"
        elif isinstance(node, ast.Name) and node.id.startswith("check_"):
            found[node.id] = node.id
    return found


_GUARD_CALL = "import loramini.course; loramini.course.fresh_checks(globals()"


def _guard_line(ex: Optional[Exercise] = None) -> str:
    """The line both graders run before a check (nbgrader: first line of each tests cell)."""
    bindings = f", {_check_bindings(ex)!r}" if ex is not None else ""
    return f"{_GUARD_CALL}{bindings})  # grading: fresh checks, monkeypatching undone"


_GUARD = None


def fresh_checks(namespace: dict, bindings: Optional[dict] = None) -> None:
    """Grading helper: undo a submission's monkeypatching and re-import loramini.checks (see `_Guard`).

    The first call in a kernel takes the snapshot, so graders call it once before any submitted code runs.
    `namespace`: the notebook's globals(); `bindings`: {name: "checks" | "loramini" | "check_…"} to rebind."""
    global _GUARD
    if _GUARD is None or _GUARD._ns is not namespace:
        _GUARD = _Guard(namespace)
    _GUARD.restore(bindings)
