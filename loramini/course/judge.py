"""The judge: runs the checks and hidden tests of one graded submission in a fresh interpreter that never ran
student code, on the answers the student's kernel wrote out (see `answers`).

    python -P -m loramini.course.judge PLAN.json RESULT.json

PLAN (written by the grader from the solution notebook, never from the submission):
{"answers": folder, "exercises": [{"key": "N|title", "steps": [step, ...]}]}, a step being
{"kind": "check", "id": ..., "source": "checks.check_x(answer, d_in=768)"} or
{"kind": "hidden", "id": ..., "source": "assert answer == 30_720", "names": ["answer"]}.
RESULT: {"N|title": {"passed": bool, "status": one line}}. An argument of a check whose expression needs no
notebook name (`768`, `torch.bfloat16`) is evaluated here; the others come from the student's kernel.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import math
import os
import sys
from pathlib import Path

from . import answers

_GENERIC = "Not right yet. Re-read the exercise and check each term."


def _namespace() -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    import loramini
    from loramini import checks

    return {"torch": torch, "nn": nn, "F": F, "np": np, "math": math, "loramini": loramini, "checks": checks}


def _trusted(expr: ast.AST, names: dict) -> bool:
    """True when `expr` reads only the judge's own modules and builtins (so it is evaluated here)."""
    return all(not isinstance(n, ast.Name) or n.id in names or hasattr(builtins, n.id) for n in ast.walk(expr)) \
        and not any(isinstance(n, (ast.Lambda, ast.NamedExpr)) for n in ast.walk(expr))


class _Strings:
    """Every string the student's answers hold, so that no status line repeats one."""

    def __init__(self):
        self.seen = set()

    def add(self, value) -> None:
        if isinstance(value, str) and len(value) >= 3:
            self.seen.add(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.add(v)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.add(k)
                self.add(v)

    def scrub(self, message: str) -> str:
        message = (str(message).splitlines() or [""])[0][:300]
        return _GENERIC if any(s in message for s in self.seen) else message


def _argument(expr, slot, names: dict, record: dict, reader, strings: _Strings):
    if _trusted(expr, names):
        return eval(compile(ast.Expression(expr), "<check>", "eval"), dict(names))
    if isinstance(slot, dict) and slot.get("t") == "function":
        return answers.Replay(record.get("tape"), reader)
    value = reader.decode(slot)
    strings.add(value)
    return value


def run_check(step: dict, folder: Path, names: dict, strings: _Strings) -> None:
    """Run one check call on the recorded answer; raises on a fail (CheckFailed, Refused, ...)."""
    try:
        record, reader = answers.read(folder, step["id"])
    except FileNotFoundError:
        raise answers.Refused("No answer was recorded: the cell stopped before its check ran.") from None
    if "error" in record:
        if record["error"] == "NotImplementedError":
            raise NotImplementedError
        raise answers.Refused("The answer was not set when the check ran (the exercise's names are missing).")
    call = ast.parse(step["source"]).body[0].value
    name = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
    slots, kw_slots = record.get("args"), record.get("kwargs")
    if type(slots) is not list or type(kw_slots) is not dict or len(slots) != len(call.args) or \
            sorted(kw_slots) != sorted(k.arg for k in call.keywords):
        raise answers.Refused("The check was not called as the exercise gives it.")
    args = [_argument(e, s, names, record, reader, strings) for e, s in zip(call.args, slots)]
    kwargs = {k.arg: _argument(k.value, kw_slots[k.arg], names, record, reader, strings) for k in call.keywords}
    with contextlib.redirect_stdout(io.StringIO()):
        getattr(names["checks"], name)(*args, **kwargs)


def run_hidden(step: dict, folder: Path, names: dict, strings: _Strings) -> None:
    record, reader = answers.read(folder, step["id"])
    scope = dict(names)
    for name, node in dict(record.get("names", {})).items():
        if name in step["names"]:
            scope[name] = reader.decode(node)
            strings.add(scope[name])
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(step["source"], "<hidden tests>", "exec"), scope)


def verdict(exercise: dict, folder: Path, names: dict) -> dict:
    strings = _Strings()
    checks = names["checks"]
    for step in exercise["steps"]:
        try:
            (run_check if step["kind"] == "check" else run_hidden)(step, folder, names, strings)
        except NotImplementedError:
            return {"passed": False, "status": "not answered"}
        except checks.CheckFailed as err:
            return {"passed": False, "status": strings.scrub(err) if step["kind"] == "check" else "a hidden test failed"}
        except answers.Refused as err:
            return {"passed": False, "status": str(err)}
        except FileNotFoundError:
            return {"passed": False, "status": "No answer was recorded: the cell stopped before its check ran."}
        except Exception as err:
            kind = answers._error_kind(err)
            return {"passed": False, "status": "a hidden test failed" if step["kind"] == "hidden" else
                    f"the check could not use the answer ({kind}): give the type the exercise asks for"}
    return {"passed": True, "status": "passed"}


def main(argv=None) -> int:
    plan_path, result_path = (argv or sys.argv[1:])[:2]
    plan = json.loads(Path(plan_path).read_text())
    os.environ["LORAMINI_GRADING"] = "1"
    names = _namespace()
    names["checks"].grading_mode(True)
    results = {ex["key"]: verdict(ex, Path(plan["answers"]), names) for ex in plan["exercises"]}
    Path(result_path).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
