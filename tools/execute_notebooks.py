#!/usr/bin/env python
"""Execute notebooks for committing: sync each jupytext pair, run it in place, clean the outputs.

    .venv/bin/python tools/execute_notebooks.py notebooks/01_lora_mini_from_scratch.py      # full mode
    .venv/bin/python tools/execute_notebooks.py --smoke notebooks/0*.py                      # LORAMINI_SMOKE=1
    .venv/bin/python tools/execute_notebooks.py --no-execute notebooks/03_finetune_roberta.py  # clean only
    make execute NB=notebooks/02_parameter_counting.py                                       # the same, via make

For each NOTEBOOK (the .py source or the .ipynb, either side of the pair):

1. ``jupytext --sync``: the newer side of the pair gives the inputs, the .ipynb keeps its outputs.
2. Execute the .ipynb in place with nbclient (cwd = the notebook's folder, kernel named by the notebook),
   with progress bars and warnings off: TQDM_DISABLE=1, HF_DATASETS_DISABLE_PROGRESS_BARS=1,
   HF_HUB_DISABLE_PROGRESS_BARS=1, TRANSFORMERS_VERBOSITY=error, TRANSFORMERS_NO_ADVISORY_WARNINGS=1,
   PYTHONWARNINGS=ignore. Any other variable (LORAMINI_MODEL, LORAMINI_GLUE_DIR, ...) passes through.
   A cell that raises (without the ``raises-exception`` tag) stops the run and leaves the files untouched.
3. Clean the outputs: drop the widget state, drop stderr text that is only warnings or progress bars,
   and replace this machine's absolute paths (venv, repo, temp dir, home, other local folders) with
   neutral text (``<venv>``, ``<repo>``, ``<tmp>``, ``~``, ``<local>``).
4. Write the .ipynb atomically, then touch the .py so it stays the newer side of the pair.

``tests/test_notebooks_meta.py`` fails on committed outputs this step would have cleaned.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "PYTHONWARNINGS": "ignore",
}
REPO = Path(__file__).resolve().parent.parent

# "path.py:12: UserWarning: message" (warnings.showwarning), its indented source line follows.
_WARNING_LINE = re.compile(r"^(\S.*?:\d+: )?\w*Warning: ")
# A tqdm bar as text, e.g. "Loading weights:  40%|####      | 41/103 [00:01<00:02, 30.1it/s]".
_PROGRESS_LINE = re.compile(r"\d+%\|.*\|")
# An absolute path under a folder that belongs to one machine; keep only its last component.
_LOCAL_PATH = re.compile(r"(?<![\w./:~<-])/(?:work|home|root|mnt|scratch|data|Users|var/folders)(?:/[^\s'\"`\\<>|:,;()\[\]]+)+")
_SITE_PACKAGES = re.compile(r"(?<![\w.])[^\s'\"`<>|:,;()\[\]]*/(?:site|dist)-packages/")


def machine_prefixes() -> list[tuple[str, str]]:
    """(absolute prefix, neutral text) pairs for this machine, longest prefix first."""
    pairs = {}
    for path, name in ((sys.prefix, "<venv>"), (os.environ.get("VIRTUAL_ENV", ""), "<venv>"),
                       (str(REPO), "<repo>"), (tempfile.gettempdir(), "<tmp>"), ("/tmp", "<tmp>"),
                       (str(Path.home()), "~")):
        for variant in {path, os.path.realpath(path)} if path else ():
            if len(variant) > 1:
                pairs.setdefault(variant.rstrip("/"), name)
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def neutral_paths(text: str, prefixes: list[tuple[str, str]] | None = None) -> str:
    """Replace absolute paths of this machine in ``text`` with neutral text."""
    text = _SITE_PACKAGES.sub("<site-packages>/", text)
    for prefix, name in prefixes if prefixes is not None else machine_prefixes():
        # Only whole path components: "/tmp" must not eat "/tmpfoo".
        text = re.sub(re.escape(prefix) + r"(?=[/\s'\"`<>|:,;()\[\]]|$)", lambda _m, n=name: n, text)
    return _LOCAL_PATH.sub(lambda m: "<local>/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def strip_warnings(text: str) -> str:
    """Remove warning blocks and progress-bar lines from stderr text; keep everything else."""
    kept, in_warning = [], False
    for line in re.split(r"(?<=\n)", text.replace("\r\n", "\n")):
        bar = line.rsplit("\r", 1)[-1]  # tqdm redraws with \r: what shows is the last segment
        if _WARNING_LINE.match(bar):
            in_warning = True
            continue
        if in_warning and bar.startswith((" ", "\t")) and bar.strip():
            continue  # the source line warnings.showwarning prints under the message
        in_warning = False
        if _PROGRESS_LINE.search(bar) or ("\r" in line and not bar.strip()):
            continue
        kept.append(line)
    return "".join(kept)


def _map_text(value, fn):
    if isinstance(value, list):
        return [fn(v) if isinstance(v, str) else v for v in value]
    return fn(value) if isinstance(value, str) else value


def clean_notebook(nb, prefixes: list[tuple[str, str]] | None = None) -> dict:
    """Clean ``nb`` (an nbformat notebook) in place; returns counts of what was changed."""
    prefixes = machine_prefixes() if prefixes is None else prefixes
    counts = {"widget_state": int(nb.metadata.pop("widgets", None) is not None), "stderr_removed": 0, "paths": 0,
              "progress_widgets": 0}

    def fix(text: str) -> str:
        new = neutral_paths(text, prefixes)
        counts["paths"] += new != text
        return new

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                text = "".join(out.text) if isinstance(out.text, list) else out.text
                if out.name == "stderr":
                    stripped = strip_warnings(text)
                    if stripped != text:
                        counts["stderr_removed"] += 1
                    if not stripped.strip():
                        continue
                    text = stripped
                out.text = fix(text)
            elif out.output_type in ("display_data", "execute_result"):
                data = out.get("data", {})
                plain = data.get("text/plain", "")
                plain = "".join(plain) if isinstance(plain, list) else plain
                if "application/vnd.jupyter.widget-view+json" in data and _PROGRESS_LINE.search(plain):
                    counts["progress_widgets"] += 1
                    continue  # a tqdm widget: without its (dropped) state it is a frozen bar
                for mime in [m for m in data if m.startswith("text/")]:
                    data[mime] = _map_text(data[mime], fix)
            elif out.output_type == "error":
                out.traceback = [fix(line) for line in out.traceback]
                out.evalue = fix(out.evalue)
            outputs.append(out)
        cell.outputs = outputs
    return counts


def _pair(path: Path) -> tuple[Path, Path]:
    if path.suffix not in (".py", ".ipynb"):
        raise SystemExit(f"error: {path}: expected a notebook's .py source or its .ipynb (e.g. notebooks/01_*.py)")
    source, ipynb = path.with_suffix(".py"), path.with_suffix(".ipynb")
    if not source.exists() and not ipynb.exists():
        raise SystemExit(f"error: {path}: no such notebook (neither {source.name} nor {ipynb.name} exists)")
    return source, ipynb


def _sync(path: Path) -> None:
    from jupytext.cli import jupytext as jupytext_cli

    if jupytext_cli(["--sync", "--quiet", str(path)]) not in (None, 0):
        raise SystemExit(f"error: jupytext --sync {path} failed")


def _write_atomic(nb, path: Path) -> None:
    import nbformat

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ipynb.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            nbformat.write(nb, fh)
        os.chmod(tmp, mode)  # mkstemp makes it 0600; keep the committed file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def process(path: Path, *, smoke: bool, execute: bool, timeout: int) -> dict:
    """Sync, execute (optional) and clean one notebook pair; returns the cleaning counts."""
    import nbformat

    source, ipynb = _pair(path)
    if source.exists():
        _sync(source)
    nb = nbformat.read(ipynb, as_version=4)
    if execute:
        from nbclient import NotebookClient

        env = {**os.environ, **QUIET_ENV}
        if smoke:
            env["LORAMINI_SMOKE"] = "1"
        else:
            env.pop("LORAMINI_SMOKE", None)
        env.pop("MPLBACKEND", None)  # let ipykernel pick the inline backend so plots are saved
        kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
        NotebookClient(nb, timeout=timeout, kernel_name=kernel, record_timing=False,
                       resources={"metadata": {"path": str(ipynb.parent)}}).execute(env=env)
    counts = clean_notebook(nb)
    nbformat.validate(nb)
    _write_atomic(nb, ipynb)
    if source.exists():
        os.utime(source)  # inputs unchanged; keep the .py the newer side, as jupytext's Lab integration expects
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", type=Path, help="notebooks/0N_name.py or .ipynb")
    parser.add_argument("--smoke", action="store_true", help="run with LORAMINI_SMOKE=1 (default: full mode)")
    parser.add_argument("--no-execute", action="store_true", help="only sync the pair and clean the saved outputs")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout {args.timeout}: must be a positive number of seconds")
    for path in args.notebooks:
        _pair(path)  # fail on a bad name before running anything
    for path in args.notebooks:
        mode = "clean only" if args.no_execute else ("smoke" if args.smoke else "full")
        print(f"{path}: {mode} ...", flush=True)
        counts = process(path, smoke=args.smoke, execute=not args.no_execute, timeout=args.timeout)
        print(f"{path}: done (widget state dropped: {counts['widget_state']}, stderr outputs cleaned: "
              f"{counts['stderr_removed']}, progress-bar widgets removed: {counts['progress_widgets']}, "
              f"outputs with paths neutralised: {counts['paths']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
