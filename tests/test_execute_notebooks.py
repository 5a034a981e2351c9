"""tools/execute_notebooks.py: what it cleans out of outputs, and one real sync + execute + clean of a tiny pair."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")
from jupytext.cli import jupytext as jupytext_cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "tools" / "execute_notebooks.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

from test_notebooks_meta import output_problems  # noqa: E402  (the committed-output check these must pass)


def _nb_with(outputs) -> "nbformat.NotebookNode":
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("pass", outputs=outputs, execution_count=1)]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_strip_warnings_keeps_real_stderr():
    text = ("/x/site-packages/transformers/modeling_utils.py:3312: FutureWarning: `a` is deprecated.\n"
            "  warnings.warn(\n"
            "Loading:  40%|####      | 41/103 [00:01<00:02, 30.1it/s]\r"
            "Loading: 100%|##########| 103/103 [00:02<00:00, 40.0it/s]\n"
            "real problem: the file was empty\n")
    assert tool.strip_warnings(text) == "real problem: the file was empty\n"
    assert tool.strip_warnings("UserWarning: x\n") == ""


def test_neutral_paths():
    prefixes = [("/work/main/.venv", "<venv>"), ("/work/main", "<repo>"), ("/tmp", "<tmp>"), ("/root", "~")]
    text = ("saved to /tmp/loramini-03-abc/adapter; data /work/shared/data/glue; repo /work/main/notebooks; "
            "lib /usr/lib/python3/dist-packages/torch/x.py; home /root/.cache/x; see https://example.org/home/a; "
            "/tmpfoo stays")
    got = tool.neutral_paths(text, prefixes)
    assert got == ("saved to <tmp>/loramini-03-abc/adapter; data <local>/glue; repo <repo>/notebooks; "
                   "lib <site-packages>/torch/x.py; home ~/.cache/x; see https://example.org/home/a; "
                   "/tmpfoo stays"), got


def test_clean_notebook_leaves_nothing_the_output_check_flags():
    nb = _nb_with([
        nbformat.v4.new_output("stream", name="stderr", text="a.py:1: UserWarning: careful\n  warnings.warn(\n"),
        nbformat.v4.new_output("stream", name="stderr", text="x.py:2: FutureWarning: old\nkeep this line\n"),
        nbformat.v4.new_output("stream", name="stdout", text=f"outputs in {tempfile.gettempdir()}/run-1\n"),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "m", "version_major": 2, "version_minor": 0},
            "text/plain": "Tokenizing:   0%|          | 0/8 [00:00<?, ? examples/s]"}),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"'{ROOT}/out'"}, execution_count=1),
    ])
    assert len(output_problems(nb)) >= 5
    counts = tool.clean_notebook(nb)
    assert output_problems(nb) == []
    outs = nb.cells[0].outputs
    assert [o.get("name", o.output_type) for o in outs] == ["stderr", "stdout", "execute_result"]
    assert outs[0].text == "keep this line\n"
    assert outs[1].text == "outputs in <tmp>/run-1\n"
    assert outs[2].data["text/plain"] == "'<repo>/out'"
    assert counts == {"widget_state": 1, "stderr_removed": 2, "paths": 2, "progress_widgets": 1}


def test_bad_notebook_name_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match=r"expected a notebook's \.py source or its \.ipynb"):
        tool.main([str(tmp_path / "notes.txt")])
    with pytest.raises(SystemExit, match=r"no such notebook"):
        tool.main([str(tmp_path / "09_missing.py")])


def test_sync_execute_clean_a_tiny_pair(tmp_path, monkeypatch):
    """Edit the .py, run the tool: the .ipynb gets the edit, executed, with no bar, warning or temp path."""
    for name in ("TQDM_DISABLE", "PYTHONWARNINGS", "LORAMINI_SMOKE"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny"), nbformat.v4.new_code_cell("print('old')")]
    ipynb = tmp_path / "09_tiny.ipynb"
    nbformat.write(nb, ipynb)
    jupytext_cli(["--quiet", "--set-formats", "ipynb,py:percent", str(ipynb)])
    source = ipynb.with_suffix(".py")
    text = source.read_text().replace("print('old')", (
        "import os, sys, tempfile, warnings\n"
        "from tqdm.auto import tqdm\n"
        "for _ in tqdm(range(3)): pass\n"
        "warnings.warn('careful')\n"
        "print(os.environ.get('LORAMINI_SMOKE'), os.path.join(tempfile.gettempdir(), 'x'))"))
    source.write_text(text)
    later = os.stat(ipynb).st_mtime + 2
    os.utime(source, (later, later))  # the edited side is the newer one

    assert tool.main(["--smoke", "--timeout", "120", str(source)]) == 0
    assert dict(os.environ) == before  # the quiet settings go to the kernel only

    out = nbformat.read(ipynb, as_version=4)
    code = out.cells[1]
    assert "warnings.warn('careful')" in code.source and code.execution_count == 1
    assert [o.get("name") for o in code.outputs] == ["stdout"], code.outputs
    assert code.outputs[0].text == "1 <tmp>/x\n"
    assert output_problems(out) == []
    assert source.stat().st_mtime >= ipynb.stat().st_mtime  # the .py stays the newer side
