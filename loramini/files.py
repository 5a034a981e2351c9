"""Writing files safely: to a temporary name, then renamed, so a crash never leaves half a file.

Generic helpers used by the adapter files (`io`), training (`train`, `checkpoint`) and the tools.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Union

from safetensors import SafetensorError

PathLike = Union[str, os.PathLike]


def _umask_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file: 0o666 minus the process umask."""
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then rename onto `path`: readers never see a partial file.

    The file gets the mode an ordinary write would (0o666 minus the umask), not mkstemp's private 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            write(tmp)
        except (SafetensorError, RuntimeError) as err:  # safetensors' / torch.save's way of saying ENOSPC, EFBIG
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise OSError(f"Could not write {str(path)!r} ({reason}). Free disk space (or raise the file-size "
                          f"limit, ulimit -f) and run again; the existing file was left as it was.") from None
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: PathLike, data: dict) -> None:
    """Write `data` as JSON, atomically. NaN/Infinity are refused (they are not JSON): ValueError."""
    try:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except ValueError as err:
        raise ValueError(f"Refusing to write {str(path)!r}: it would hold NaN or Infinity, which is not valid "
                         f"JSON ({err}). A non-finite number here usually means training diverged.") from None

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def folder_bytes(folder: PathLike) -> int:
    """Total size of the files under `folder` (recursively), in bytes."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def check_writable_dir(path: PathLike, flag: str = "--output-dir") -> None:
    """Raise one clear ValueError if `path` cannot become a folder we can write into.

    Checked before any work starts (creating nothing): `path` must be a folder, or not exist yet under a
    writable folder. Why: a run that finds out only when it saves loses all its training.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:  # the nearest part of the path that exists
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise ValueError(f"{flag} {path} {where}, not a folder: give a folder path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: the folder {existing} is not writable: give a folder you can write to.")


def write_report(stem: Path, results: dict, text: str) -> None:
    """A benchmark's results as `stem`.json (the data) and `stem`.md (the same as a table a person reads)."""
    stem = Path(stem)
    write_json(stem.with_suffix(".json"), results)
    atomic_write(stem.with_suffix(".md"), lambda tmp: Path(tmp).write_text(text))
