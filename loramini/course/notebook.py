"""Reading solution notebooks: the exercise markers, one `Exercise` per exercise cell, and small notebook helpers
shared by the student copies, the nbgrader converter and the grader."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


# ---------------------------------------------------------------- notebook text
_NBVAL = re.compile(r"^[ \t]*# NBVAL_[A-Z_]+[ \t]*(\n|$)", re.M)
_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S)
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)", re.M | re.S)
_BEGIN = re.compile(r"^[ \t]*### BEGIN SOLUTION")
_END = re.compile(r"^[ \t]*### END SOLUTION")
_TITLE = re.compile(r"^# Exercise (\d+): *(.*?)\s*$")
_WRITTEN_TITLE = re.compile(r"Exercise (\d+)[^:\n]*:\**\s*(.+?)\s*(?:\*\*|$)", re.M)
_NOTEBOOK = "[0-9][0-9]*_*.ipynb"   # 01_name, 01b_name, 02_name, ...
_MD_ANSWER = "YOUR ANSWER HERE"
_STUDENT_NOTE = ("> **Student version.** An exercise cell raises `Todo` (a one-line message) until you replace "
                 "its `raise Todo(...)` line with your answer; the `checks` call after it then prints ✓ or a hint. "
                 "*Run All* runs past unanswered exercises.")
_TODO_IMPORT = "from loramini.course import Todo  # what an unanswered exercise cell raises"


def _drop_nbval(source: str) -> str:
    return _NBVAL.sub("", source)


def notebook_id(name) -> str:
    """The number a notebook goes by: its file name up to the first '_' (`01`, `01b`, `02`)."""
    return Path(name).name.split("_", 1)[0]


def names_notebook(key, name) -> bool:
    """Whether `key` picks notebook `name`: its number (`01` picks `01_x`, not `01b_y`), stem or file name, or
    a longer start of its name (`01_lo`)."""
    key, name = str(key), Path(name).name
    return key in (notebook_id(name), Path(name).stem, name) or ("_" in key and name.startswith(key))


def has_exercise(source: str) -> bool:
    return "### BEGIN SOLUTION" in source


def strip_solutions(source: str, placeholder: str = "raise NotImplementedError()") -> str:
    """The student version of one code cell's source: hidden tests removed, each answer → `placeholder`."""
    source = _HIDDEN.sub("", source)
    return _SOLUTION.sub(lambda m: f"{m.group(1)}{placeholder}{m.group(2)}", source)


def strip_markdown_solution(source: str) -> str:
    """The student version of a markdown cell: a written answer becomes YOUR ANSWER HERE (as nbgrader does)."""
    return _SOLUTION.sub(lambda m: f"{m.group(1)}{_MD_ANSWER}{m.group(2)}", source)


def _norm(title: str) -> str:
    return " ".join(title.lower().split())


@dataclass
class Exercise:
    """One exercise of a solution notebook, as line lists with NBVAL lines removed.

    `head`: the code before the first `### BEGIN SOLUTION`; `answers[i]`: the model answer of solution block i
    (indented by `indents[i]`); `after[i]` = (pre, stmts): the code after block i up to the next block (the
    last one is the tail), split at its first top-level statement: `pre` (the rest of an enclosing block,
    comments) and `stmts` (check calls and hidden tests, which the graders always restore)."""

    number: int
    title: str
    cell: int
    written: bool = False
    head: list = field(default_factory=list)
    answers: list = field(default_factory=list)
    indents: list = field(default_factory=list)
    after: list = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return self.number, _norm(self.title)

    @property
    def label(self) -> str:
        return f"Exercise {self.number}: {self.title}"

    @property
    def placeholder(self) -> str:
        quoted = self.label.replace("\\", "\\\\").replace('"', '\\"')
        return f'raise Todo("{quoted}")'

    @property
    def tail_stmts(self) -> list:
        return self.after[-1][1] if self.after else []

    @property
    def hidden_lines(self) -> list:
        return [line for _, stmts in self.after for m in _HIDDEN.finditer("\n".join(stmts))
                for line in m.group(0).split("\n") if line.strip() and "### " not in line]

    def visible_after(self, i: int) -> list:
        """What the student sees after block i: hidden tests removed."""
        pre, stmts = self.after[i]
        text = _HIDDEN.sub("", "\n".join(pre + stmts))
        return text.split("\n") if text else []

    def assemble(self, answers: list, guard: Optional[str] = None) -> tuple[list, list]:
        """(lines, ranges): the cell with `answers` in its blocks and `guard` before each block of statements
        that follows an answer; ranges[i] = (start, stop) of the lines after answer i that come from the
        solution (guard included)."""
        lines, ranges = list(self.head), []
        for answer, (pre, stmts) in zip(answers, self.after):
            lines += answer
            start = len(lines)
            lines += pre + ([guard] if guard and stmts else []) + stmts
            ranges.append((start, len(lines)))
        return lines, ranges

    def student_source(self) -> str:
        """The exercise cell as the student copy shows it (also what the grader runs for a missing exercise)."""
        lines = list(self.head)
        for i, indent in enumerate(self.indents):
            lines += [indent + self.placeholder] + self.visible_after(i)
        return "\n".join(lines).rstrip("\n")


def _parse(source: str) -> ast.Module:
    """`ast.parse`, after IPython's own transforms when the cell holds magics (`%pip`, `!ls`)."""
    try:
        return ast.parse(source)
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))


def _split_code_exercise(ex: Exercise, source: str) -> Exercise:
    lines = source.split("\n")
    begins = [i for i, line in enumerate(lines) if _BEGIN.match(line)]
    ends = [i for i, line in enumerate(lines) if _END.match(line)]
    if len(begins) != len(ends) or any(not b < e for b, e in zip(begins, ends)) or \
            any(not e < b for e, b in zip(ends, begins[1:])):
        raise ValueError(f"{ex.label}: unbalanced ### BEGIN SOLUTION / ### END SOLUTION markers")
    try:
        starts = [node.lineno - 1 for node in _parse(source).body]  # 0-based first line of each statement
    except SyntaxError:
        starts = []
    ex.head = lines[:begins[0]]
    for i, (begin, end) in enumerate(zip(begins, ends)):
        stop = begins[i + 1] if i + 1 < len(begins) else len(lines)
        ex.answers.append(lines[begin + 1:end])
        ex.indents.append(re.match(r"[ \t]*", lines[begin]).group(0))
        first = next((s for s in starts if end < s < stop), stop)
        ex.after.append((lines[end + 1:first], lines[first:stop]))
    return ex


def exercises(nb) -> list[Exercise]:
    """The exercises of a solution notebook, in order."""
    found = []
    for index, cell in enumerate(nb.cells):
        if not has_exercise(cell.source):
            continue
        source = _drop_nbval(cell.source)
        if cell.cell_type == "code":
            first = next((line for line in source.split("\n") if line.strip()), "")
            title = _TITLE.match(first)
            if title is None:
                raise ValueError(f"cell {index}: a solution block outside an exercise cell; start the cell with "
                                 f"'# Exercise N: title'")
            found.append(_split_code_exercise(Exercise(int(title.group(1)), title.group(2), index), source))
        elif cell.cell_type == "markdown":
            title = _WRITTEN_TITLE.search(source)
            if title is None:
                raise ValueError(f"cell {index}: a written answer without a title; write 'Exercise N (written): "
                                 f"title' before it")
            found.append(Exercise(int(title.group(1)), title.group(2).rstrip(".").strip(), index, written=True))
    return found


def solution_notebooks(source: Path, only: Optional[list] = None) -> list[Path]:
    """`NN_*.ipynb` in `source` that hold at least one exercise; `only`: numbers (`01`, `01b`) or names to keep.
    Raises SystemExit with one line when there are none (wrong folder, not a clone)."""
    import nbformat

    source = Path(source)
    paths = []
    for path in sorted(source.glob(_NOTEBOOK)):
        if only and not any(names_notebook(o, path) for o in only):
            continue
        if any(has_exercise(c.source) for c in nbformat.read(path, as_version=4).cells):
            paths.append(path)
    if not paths:
        what = f" matching {' '.join(map(str, only))}" if only else ""
        raise SystemExit(f"error: no solution notebooks{what} (NN_name.ipynb with '### BEGIN SOLUTION') in "
                         f"{source.resolve()}; pass --source/--solutions <the folder holding them>")
    return paths


def _clean(nb) -> None:
    """Outputs, execution counts, timing metadata, widget state and jupytext pairing go (in place)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    for key in ("widgets", "jupytext"):
        nb.metadata.pop(key, None)


def _tag(cell, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def render(nb) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def _write(path: Path, text: str) -> None:
    from ..io import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
