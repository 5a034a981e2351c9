"""`Todo`: what an unanswered exercise cell of a student copy raises. The one name a student kernel imports
from `loramini.course`, so it stays free of the grading tooling (no nbformat, no nbclient)."""


class Todo(NotImplementedError):
    """Raised by an exercise cell of a student copy until the student answers it.

    A NotImplementedError (so code that treats "not done yet" specially still does), shown by IPython as one
    line instead of a traceback (`_render_traceback_`)."""

    def _render_traceback_(self):
        return [f"\x1b[1;31m{self.args[0] if self.args else 'Exercise'}\x1b[0m: not answered yet. Replace the "
                f"`raise Todo(...)` line with your answer and run the cell again."]
