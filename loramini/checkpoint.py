"""Resumable checkpoints: a run killed at any moment resumes and ends exactly where it would have.

`save_checkpoint` writes `output_dir/checkpoints/step-N/`: the trainable tensors and every process's RNG
state as safetensors, the optimizer state with `torch.save` (read back with `weights_only=True`), the
scheduler and the run's state as JSON. `state.json` is written last, so a folder without it is incomplete
and ignored; older checkpoints are deleted once a new one is complete. `load_checkpoint` refuses a
checkpoint made with other settings, and names the file and the way out when one is damaged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import torch

from .files import atomic_write, write_json
from .train_config import TrainConfig

def latest_checkpoint(output_dir: Optional[str]) -> Optional[Path]:
    root = Path(output_dir or "") / "checkpoints"
    if not output_dir or not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / "state.json").is_file() and p.name[5:].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _unreadable(path: Path, err: BaseException) -> ValueError:
    """One line naming the checkpoint file, what is wrong, and the way out."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ValueError(f"Checkpoint file {path} is unreadable or incomplete ({reason}): delete {path.parent} or start "
                      f"over with --no-resume (resume=False).")


def rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state[f"cuda{i}"] for i in range(torch.cuda.device_count())])


def save_checkpoint(accelerator, model, optimizer, scheduler, output_dir: str, state: dict) -> Path:
    """Write checkpoint `step-N` (atomic files; state.json last) and delete the older ones."""
    from safetensors.torch import save_file

    folder = Path(output_dir) / "checkpoints" / f"step-{state['global_step']}"
    rank = accelerator.process_index
    rng = rng_state()
    atomic_write(folder / f"rng-{rank}.safetensors", lambda tmp: save_file(rng, tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        trainable = {n: p.detach().cpu().contiguous()
                     for n, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}
        atomic_write(folder / "trainable.safetensors", lambda tmp: save_file(trainable, tmp))
        atomic_write(folder / "optimizer.pt", lambda tmp: torch.save(optimizer.state_dict(), tmp))
        write_json(folder / "scheduler.json", scheduler.state_dict())
        write_json(folder / "state.json", state)
        for old in folder.parent.glob("step-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def load_checkpoint(accelerator, model, optimizer, scheduler, folder: Path, config: TrainConfig) -> dict:
    """Restore model, optimizer, scheduler and RNG from `folder`; returns its state.json."""
    from safetensors.torch import load_file

    def read(name: str, loader):
        try:
            return loader(folder / name)
        except Exception as err:  # truncated, empty, not JSON, a missing file: one line, with the file
            raise _unreadable(folder / name, err) from None

    state = read("state.json", lambda p: json.loads(p.read_text()))
    keys = ("config", "history", "epoch", "batches_in_epoch", "global_step")
    if not isinstance(state, dict) or not all(k in state for k in keys) or not isinstance(state["config"], dict):
        raise _unreadable(folder / "state.json", ValueError(f"expected the keys {list(keys)}"))
    _check_same_settings(folder, state, config)
    trainable = read("trainable.safetensors", lambda p: load_file(str(p)))
    unwrapped = accelerator.unwrap_model(model)
    params = dict(unwrapped.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in trainable]
    if missing:
        raise ValueError(f"Checkpoint {folder} lacks trainable tensors {missing[:3]}...: it belongs to another model.")
    with torch.no_grad():
        for name, tensor in trainable.items():
            params[name].copy_(tensor)
    read("optimizer.pt", lambda p: optimizer.load_state_dict(torch.load(p, weights_only=True, map_location="cpu")))
    read("scheduler.json", lambda p: scheduler.load_state_dict(json.loads(p.read_text())))
    # Without its RNG state the dropout stream (and the result) would differ from an uninterrupted run.
    state["rng"] = read(f"rng-{accelerator.process_index}.safetensors", lambda p: load_file(str(p)))
    return state


def _check_same_settings(folder: Path, state: dict, config: TrainConfig) -> None:
    """Refuse to resume under other settings: every one of them (epochs too: it sets the learning-rate schedule)
    shapes the run, so a resumed run under others would mix two runs and match neither."""
    saved = {k: v for k, v in state["config"].items() if k not in ("output_dir", "resume", "progress")}
    current = {k: v for k, v in config.to_dict().items() if k in saved}
    if saved != current:
        diff = [k for k in saved if saved[k] != current[k]]
        was = ", ".join(f"{k}={saved[k]!r} (now {current[k]!r})" for k in diff)
        flags = " ".join(f"--{k.replace('_', '-')} {saved[k]}" for k in diff)
        raise ValueError(f"The checkpoint {folder} (step {state['global_step']}) was made with other settings: "
                         f"{was}. A run resumed under other settings would match neither: rerun with the saved "
                         f"ones ({flags}), use another output_dir, or start over with --no-resume (resume=False).")
