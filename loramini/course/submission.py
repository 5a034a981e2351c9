"""Reading a submission: which solution notebook it answers, who submitted it, and the student's answer region
of each exercise (everything else of a submission is ignored: the graded notebook is rebuilt from the solution)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Optional

from .guard import _GUARD_CALL, _guard_line
from .notebook import (_BEGIN, _END, _HIDDEN, _MD_ANSWER, _TITLE, _WRITTEN_TITLE, Exercise, _drop_nbval, _norm,
                       _parse, names_notebook, notebook_id, strip_solutions)


def _common_prefix(a: list, b: list) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n].rstrip() == b[n].rstrip():
        n += 1
    return n


def _find_block(lines: list, block: list, start: int) -> Optional[int]:
    """Index of the first run of `lines` from `start` on that equals `block` (trailing spaces ignored)."""
    want = [line.rstrip() for line in block]
    for i in range(start, len(lines) - len(want) + 1):
        if [line.rstrip() for line in lines[i:i + len(want)]] == want:
            return i
    return None


def _trim(lines: list) -> list:
    text = "\n".join(lines).strip("\n")
    return text.split("\n") if text else []


def extract_answer(ex: Exercise, submitted: str) -> Optional[list]:
    """The student's answers (one line list per solution block) in `submitted` (an exercise cell, or nbgrader's
    answer and tests cells joined): the lines between the code the student was given. None when a given piece
    between two answers cannot be found (the student changed it)."""
    # Marker lines and hidden tests in a submission (e.g. the solution notebook itself) are not the student's.
    text = _HIDDEN.sub("", _drop_nbval(submitted))
    lines = [line for line in text.rstrip("\n").split("\n")
             if not (_BEGIN.match(line) or _END.match(line) or line.startswith(_GUARD_CALL))]
    head = strip_solutions("\n".join(ex.head)).split("\n") if ex.head else []
    tail = _trim(ex.visible_after(len(ex.answers) - 1))
    start = _common_prefix(lines, head)
    rest = lines[start:]
    middle = rest[:len(rest) - _common_prefix(rest[::-1], tail[::-1])]
    answers, pos = [], 0
    for i in range(len(ex.answers) - 1):
        block = _trim(ex.visible_after(i))
        at = _find_block(middle, block, pos) if block else len(middle)
        if at is None:
            return None
        answers.append(_trim(middle[pos:at]))
        pos = min(at + len(block), len(middle))
    answers.append(_trim(middle[pos:]))
    return answers


def restore_exercise(ex: Exercise, answers: Optional[list]) -> tuple[str, Optional[str]]:
    """(source to run, problem): the solution's cell with the student's `answers` in its solution blocks and a
    guard line before each run of check lines. `problem` is set (and the source is the blank student version)
    when the given code between answers was changed, or an answer would swallow the check lines."""
    if answers is None:
        return ex.student_source(), "altered: the code given between the answers was changed"
    guard = _guard_line(ex)
    lines, ranges = ex.assemble(answers, guard)
    ref_lines, ref_ranges = ex.assemble(ex.answers, guard)

    def fixed(src: list, spans: list) -> list:
        body = _parse("\n".join(src)).body
        return [[ast.dump(n) for n in body if a <= n.lineno - 1 and n.end_lineno <= b] for a, b in spans]
    try:
        got = fixed(lines, ranges)
    except SyntaxError as err:
        return ex.student_source(), f"SyntaxError in the answer: {err.msg} (line {err.lineno})"
    if got != fixed(ref_lines, ref_ranges):
        return ex.student_source(), "altered: an answer swallows the check lines (an open block or string)"
    return "\n".join(lines), None


def _submitted_exercises(nb) -> dict:
    """{(number, normalized title): source} of a submission; also {title: source}. An nbgrader answer cell is
    joined with the cells of the same exercise after it (its locked tests cell, further parts)."""
    by_key, by_title = {}, {}
    cells = nb.cells
    for i, cell in enumerate(cells):
        source = _drop_nbval(cell.source)
        if cell.cell_type == "code":
            first = next((line for line in source.split("\n") if line.strip()), "")
            m = _TITLE.match(first)
            if m is None:
                continue
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            for nxt in cells[i + 1:] if gid else []:  # nbgrader: nb01_ex04 + nb01_ex04_tests (+ _part2, …)
                if not str(nxt.metadata.get("nbgrader", {}).get("grade_id", "")).startswith(gid + "_"):
                    break
                source = source.rstrip("\n") + "\n\n" + nxt.source
        elif cell.cell_type == "markdown":
            m = _WRITTEN_TITLE.search(source)
            if m is None or not (cell.metadata.get("nbgrader", {}).get("solution") or _MD_ANSWER in source
                                 or "written" in source.lower()):
                continue
        else:
            continue
        title = m.group(2).rstrip(".").strip() if cell.cell_type == "markdown" else m.group(2)
        by_key[(int(m.group(1)), _norm(title))] = (cell.cell_type, source)
        by_title[_norm(title)] = (cell.cell_type, source)
    return {"key": by_key, "title": by_title}


def _match_solution(path: Path, sub: dict, solutions: dict, forced: Optional[str]) -> str:
    if forced:
        hits = [name for name in solutions if names_notebook(forced, name)]
        if len(hits) != 1:
            raise SystemExit(f"error: --notebook {forced!r} names {len(hits)} of the solution notebooks "
                             f"({', '.join(solutions)}); give one of them")
        return hits[0]
    overlap = {name: sum(ex.key in sub["key"] for ex in exs) for name, (_, exs) in solutions.items()}
    best = max(overlap.values(), default=0)
    named = [n for n in solutions if n == path.name or Path(n).stem in path.stem
             or re.search(rf"(?<!\d){re.escape(notebook_id(n))}(?!\d)", path.stem, re.I)]
    # "bob_01b" names 01b, not also 01
    named = [n for n in named if not any(notebook_id(m).startswith(notebook_id(n)) and m != n for m in named)]
    if best > 0:
        top = [n for n, v in overlap.items() if v == best]
        return next((n for n in top if n in named), top[0])
    if len(named) == 1:
        return named[0]
    raise SystemExit(f"error: cannot tell which notebook {path} answers (no exercise titles found); name the file "
                     f"like the solution (e.g. {next(iter(solutions))}) or pass --notebook")


def student_id(path: Path, rule: str) -> str:
    """Who submitted `path`: rule "path" (as given), "name" (file stem), "parent", "grandparent" (folder names,
    as in nbgrader's submitted/<student>/<assignment>/), or a regex whose first group is the student."""
    path = Path(path)
    if rule == "path":
        return str(path)
    if rule == "name":
        return path.stem
    if rule == "parent":
        return path.parent.name
    if rule == "grandparent":
        return path.parent.parent.name
    m = re.search(rule, path.as_posix())
    if m is None or not m.groups():
        raise SystemExit(f"error: --student-from {rule!r} does not match {path.as_posix()} (or has no group); use "
                         f"path, name, parent, grandparent or a regex such as 'submitted/([^/]+)/'")
    return m.groupdict().get("student") or m.group(1)
