"""Issue 20: hard edges, round 2. Each test reproduces one defect the second probe found (and fails without its fix).

Numbered as the issue's items; items 5, 6, 7 and the exploding-loss rule are tested with the training loop.
"""

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import loramini
from loramini import LoRAMiniConfig
from loramini.ablation import cached_run, cell_path, grid_cells
from loramini.experiments import Protocol, confidence_interval, run_protocol, tune_lr, write_results
from loramini.io import CONFIG_NAME, WEIGHTS_NAME
from loramini.train import TrainingDiverged

from helpers import train_steps

ROOT = Path(__file__).resolve().parent.parent


def logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def adapted(batch, targets, seed=0):
    model = loramini.tiny_roberta(seed=seed)
    loramini.inject(model, LoRAMiniConfig(r=4, a=16, b=16, target_modules=targets))
    return train_steps(model, batch, 3)


def benchmark_module(name: str = "accuracy_vs_params"):
    """benchmarks/<name>.py, imported from its path (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ 1. a failed load keeps the adapter already there
def test_failed_second_load_keeps_the_first_adapter(batch, tmp_path):
    model = adapted(batch, ["query"])
    other = loramini.save_adapter(adapted(batch, ["key"]), tmp_path / "key-adapter")
    names = [n for n, _ in loramini.loramini_layers(model)]
    before = logits(model, batch)
    with pytest.raises(ValueError, match="already has an adapter.*unload.*fresh base"):
        loramini.load_adapter(model, other)
    assert [n for n, _ in loramini.loramini_layers(model)] == names
    assert torch.equal(logits(model, batch), before) and hasattr(model, "loramini_config")


def test_loading_the_same_adapter_twice_says_so(batch, tmp_path):
    folder = loramini.save_adapter(adapted(batch, ["query"]), tmp_path / "adapter")
    base = loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)
    before = logits(base, batch)
    with pytest.raises(ValueError, match="already has an adapter; unload it .*or use a fresh base"):
        loramini.load_adapter(base, folder)
    assert torch.equal(logits(base, batch), before)


# ------------------------------------------------------------------ 2. the protocol survives a diverging rate
@pytest.mark.parametrize("grid", [[0, 1e-3], [-1e-3, 1e-3], [math.nan, 1e-3], [math.inf, 1e-3], ["1e-3", 1e-2]])
def test_tune_lr_refuses_rates_that_are_not_positive_numbers(grid):
    with pytest.raises(ValueError, match=r"tune_lr: .*finite number > 0") as info:
        tune_lr(lambda lr: 0.0, grid)
    assert len(str(info.value).splitlines()) == 1


def test_tune_lr_never_selects_a_diverged_rate_and_lowers_an_all_diverged_grid():
    sweep = tune_lr(lambda lr: math.nan if lr > 1e-2 else 0.5, [1e-1, 1.0], max_extensions=3)
    assert sweep.best_lr is not None and sweep.best_lr <= 1e-2 and sweep.grid[0] < 1e-1
    stuck = tune_lr(lambda lr: -math.inf, [1e-3, 1e-2], max_extensions=2)
    assert stuck.best_lr is None and stuck.extended == 2 and stuck.grid[0] < 1e-3


def fake_run(calls, diverge_above=1.0):
    def run(params):
        calls.append(params)
        if params["lr"] > diverge_above or params.get("r", 1) > 32:
            raise TrainingDiverged(f"Training diverged at step 2: the loss is nan (lr {params['lr']}).")
        return {"metric": 0.7 + 0.01 * params["seed"] - abs(math.log10(params["lr"]) + 2) / 100,
                "main_metric": "accuracy", "adapter_params": params.get("r", 1), "trainable_params": 5, "lr": params["lr"]}
    return run


def test_protocol_caches_reports_and_never_selects_a_diverged_run(tmp_path):
    calls = []
    protocol = Protocol(base={"task": "t", "model": "tiny"}, methods={"m": {"method": "m", "r": 2}},
                        lr_grids={"m": [1e-2, 1e3]}, variants={"m": [{"r": 64}]}, seeds=[0, 1, 2])
    results = run_protocol(protocol, tmp_path, run=fake_run(calls), log=lambda _: None)
    sweep = results["lr_sweeps"][0]
    assert sweep["best_lr"] < 1e3 and sweep["diverged"] == [1e3]
    assert sweep["scores"][sweep["grid"].index(1e3)] is None  # JSON has no -inf
    good, bad = results["cells"]
    assert not good["diverged"] and good["lr"] == sweep["best_lr"] and len(good["values"]) == 3
    assert bad["diverged"] and bad["metric_mean"] is None and bad["ci95"] is None and bad["r"] == 64
    write_results(tmp_path / "out.json", results, "cmd")  # the results are valid JSON
    n = len(calls)
    again = run_protocol(protocol, tmp_path, run=fake_run(calls), log=lambda _: None)
    assert len(calls) == n and again == results  # the diverged runs were cached too: no retraining


def test_the_issue_repro_completes(tmp_path):
    protocol = Protocol(base={"model": "tiny", "task": "synthetic", "epochs": 1, "max_train_samples": 150},
                        methods={"loramini": {"method": "loramini"}}, lr_grids={"loramini": [8e-3, 1e30]},
                        max_extensions=0)
    results = run_protocol(protocol, tmp_path, log=lambda _: None)
    sweep, cell = results["lr_sweeps"][0], results["cells"][0]
    assert sweep["best_lr"] == 8e-3 and sweep["diverged"] == [1e30]
    assert cell["lr"] == 8e-3 and not cell["diverged"] and 0 < cell["metric_mean"] <= 1
    diverged = [json.loads(f.read_text()) for f in tmp_path.glob("cell-*.json")]
    assert sum(bool(d["result"].get("diverged")) for d in diverged) == 1


# ------------------------------------------------------------------ 3. seeds must be distinct
@pytest.mark.parametrize("field", ["seeds", "tune_seeds"])
def test_repeated_seeds_are_refused(tmp_path, field):
    protocol = Protocol(base={}, methods={"m": {}}, **{field: [0, 0, 0]})
    with pytest.raises(ValueError, match=f"{field}=\\[0, 0, 0\\].*distinct"):
        run_protocol(protocol, tmp_path, run=fake_run([]))


def test_grid_values_must_be_distinct():
    with pytest.raises(ValueError, match=r"grid\['seed'\]=\[0, 0\].*twice"):
        grid_cells({"r": [1], "seed": [0, 0]})


# ------------------------------------------------------------------ 4. caches keyed by what determines the result
def model_folder(path, seed=0):
    loramini.tiny_roberta(seed=seed).save_pretrained(path)
    return str(path)


def test_model_identity_follows_the_files_not_the_name(tmp_path):
    from loramini.ablation import model_identity

    a = model_folder(tmp_path / "a")
    b = model_folder(tmp_path / "b", seed=1)
    assert model_identity("tiny") == "tiny"
    assert model_identity(a) != model_identity(b)
    first = model_identity(a)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    config["hidden_dropout_prob"] = 0.3
    (tmp_path / "a" / "config.json").write_text(json.dumps(config))
    assert model_identity(a) != first
    with pytest.raises(ValueError, match="/nonexistent/model.*no such folder"):
        model_identity("/nonexistent/model")


def test_run_cache_is_keyed_by_the_run_version_and_the_model(tmp_path):
    folder = model_folder(tmp_path / "m")
    calls = []

    def run(params):
        calls.append(params)
        return {"metric": 0.5}

    run.run_version = 1
    params = {"model": folder, "r": 2}
    cached_run(params, run, tmp_path / "cache")
    cached_run(params, run, tmp_path / "cache")
    assert len(calls) == 1
    run.run_version = 2  # the run function's results changed: old numbers must not come back
    cached_run(params, run, tmp_path / "cache")
    assert len(calls) == 2
    model_folder(tmp_path / "m", seed=3)  # another model at the same path
    cached_run(params, run, tmp_path / "cache")
    assert len(calls) == 3


def test_a_cache_file_from_before_versions_counts_as_version_1(tmp_path):
    calls = []

    def run(params):
        calls.append(params)
        return {"metric": 0.5}

    path = cell_path({"r": 1}, tmp_path)
    path.write_text(json.dumps({"params": {"r": 1}, "result": {"metric": 0.25}}))
    assert cached_run({"r": 1}, run, tmp_path) == {"metric": 0.25} and not calls


def test_probe_references_are_keyed_by_the_model_not_its_label(tmp_path, monkeypatch):
    bench = benchmark_module()
    computed = []
    monkeypatch.setattr(bench, "probe_references",
                        lambda model, *a: computed.append(model) or {"probe": {"metric_mean": len(computed)}})
    a, b = model_folder(tmp_path / "a"), model_folder(tmp_path / "b", seed=1)
    args = bench.build_parser().parse_args(["--model", a, "--model-label", "same", "--cache", str(tmp_path / "c")])
    first = bench.cached_references(args, "synthetic", tmp_path / "c")
    assert bench.cached_references(args, "synthetic", tmp_path / "c") == first and computed == [a]
    args.model = b
    assert bench.cached_references(args, "synthetic", tmp_path / "c") != first and computed == [a, b]


def test_benchmark_with_a_nonexistent_model_fails_before_reusing_numbers(tmp_path, capsys):
    bench = benchmark_module()
    with pytest.raises(SystemExit) as done:
        bench.main(["--model", "/nonexistent/model", "--model-label", "tiny", "--cache", str(tmp_path),
                    "--out", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "/nonexistent/model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


# ------------------------------------------------------------------ 8. one line instead of a traceback
def test_tsv_field_longer_than_csv_default_limit_is_read(tmp_path):
    from loramini.data import read_glue_tsv

    limit = csv.field_size_limit()
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "a" * 200_000 + "\t1\nshort\t0\n")
    columns = read_glue_tsv(path, "sst2")
    assert [len(s) for s in columns["sentence"]] == [200_000, 5] and columns["label"] == [1, 0]
    assert csv.field_size_limit() == limit  # the process-wide limit is left as it was


def test_full_disk_while_saving_is_one_line_and_keeps_the_old_adapter(batch, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    model = adapted(batch, ["query"])
    folder = loramini.save_adapter(model, tmp_path / "adapter")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    monkeypatch.setattr(loramini.io, "save_file", full)
    with pytest.raises(OSError, match=f"{WEIGHTS_NAME}.*No space left.*[Ff]ree") as info:
        loramini.save_adapter(model, folder)
    assert len(str(info.value).splitlines()) == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_torch_save_failure_is_an_os_error_naming_the_file(tmp_path):
    from loramini.io import atomic_write

    def fail(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")

    with pytest.raises(OSError, match="optimizer.pt.*PytorchStreamWriter failed.*[Ff]ree"):
        atomic_write(tmp_path / "optimizer.pt", fail)
    assert not list(tmp_path.iterdir())


def test_damaged_encoder_cache_is_retrained(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from loramini import synthetic

    monkeypatch.setenv("LORAMINI_CACHE", str(tmp_path))
    synthetic._pretrained_encoder.cache_clear()
    task = synthetic.make_synthetic()
    path = synthetic.encoder_cache_path(task.teacher.seed, task.teacher.rank, 2, task.teacher.readout)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"not.a.key": torch.zeros(2)}, str(path))
    try:
        model = synthetic.tiny_pretrained(task, pretrain_steps=2)
    finally:
        synthetic._pretrained_encoder.cache_clear()
    assert isinstance(model, torch.nn.Module)
    from safetensors.torch import load_file

    assert "not.a.key" not in load_file(str(path))  # the damaged file was replaced


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "0"], "--seeds"), (["--seeds", "0", "0", "0"], "distinct"), (["--tune-seeds", "1", "1"], "distinct"),
    (["--epochs", "0"], "--epochs"), (["--task", "foo"], "foo"), (["--methods", "lorra"], "lorra"),
    (["--max-train-samples", "-3"], "--max-train-samples")])
def test_benchmark_bad_flags_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    bench = benchmark_module()
    with pytest.raises(SystemExit) as done:
        bench.main(argv + ["--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ 9. a corrupt run-cache file
@pytest.mark.parametrize("text", ["", "{", '{"params": {}}', '[1, 2]', '{"params": {}, "result": 3}'])
def test_corrupt_cache_file_is_named_and_recomputed(tmp_path, text):
    path = cell_path({"r": 1}, tmp_path)
    path.write_text(text)
    with pytest.warns(UserWarning, match=f"{path.name}.*running it again"):
        result = cached_run({"r": 1}, lambda p: {"metric": 0.5}, tmp_path)
    assert result == {"metric": 0.5} and json.loads(path.read_text())["result"] == {"metric": 0.5}


def test_corrupt_cache_file_through_the_ablation_runner(tmp_path):
    from loramini.ablation import run_ablation

    calls = []
    run = lambda p: calls.append(p) or {"metric": 0.1 * p["r"]}  # noqa: E731
    run_ablation({"r": [1, 2]}, run, tmp_path)
    cell_path({"r": 2}, tmp_path).write_text("{not json")
    with pytest.warns(UserWarning, match="cell-.*json"):
        table = run_ablation({"r": [1, 2]}, run, tmp_path)
    assert len(calls) == 3 and list(table["metric"]) == pytest.approx([0.1, 0.2])


# ------------------------------------------------------------------ 10. confidence_interval's level
@pytest.mark.parametrize("level", [1.5, 1.0, 0, -1, math.nan, True, "0.95"])
def test_confidence_interval_level_must_lie_in_0_1(level):
    with pytest.raises(ValueError, match="level"):
        confidence_interval([0.1, 0.2, 0.3], level=level)


def test_the_t_interval_has_one_home():
    """Only `confidence_interval` computes a t quantile; nothing retypes 1.96 or a t value."""
    files = [ROOT / "loramini" / f for f in ("experiments.py", "ablation.py", "probe.py", "bench.py", "data.py")]
    files.append(ROOT / "benchmarks" / "accuracy_vs_params.py")
    for path in files:
        text = path.read_text()
        assert "1.96" not in text and "4.30" not in text and "2.776" not in text, path
        assert text.count("stats.t.") == (1 if path.name == "experiments.py" else 0), path


# ------------------------------------------------------------------ 11. clear messages
def write_pair(tmp_path, train, dev='{"sentence": "ok", "label": 1}\n', suffix=".jsonl"):
    (tmp_path / f"train{suffix}").write_text(train)
    (tmp_path / f"dev{suffix}").write_text(dev)
    return tmp_path / f"train{suffix}", tmp_path / f"dev{suffix}"


@pytest.mark.parametrize("train,match", [
    ('{"sentence": "good", "label": 1}\n{"sentence": "ba', r"train.jsonl: line 2 is not valid JSON"),
    ('{"sentence": "good", "label": [1, 0]}\n', r"train.jsonl: row 1 field 'label' is \[1, 0\]"),
    ('{"text": "good", "label": 1}\n', r"train.jsonl: row 1 lacks field\(s\) \['sentence'\]"),
    ('{"sentence": ["a"], "label": 1}\n', r"train.jsonl: row 1 field 'sentence' is \['a'\], not a string"),
])
def test_bad_jsonl_names_file_row_and_field(tmp_path, train, match):
    from loramini.data import load_local_files

    with pytest.raises(ValueError, match=match) as info:
        load_local_files(*write_pair(tmp_path, train), "sst2")
    assert len(str(info.value).splitlines()) == 1 and "dev.jsonl" not in str(info.value)


def test_csv_train_file_missing_the_text_column_is_blamed_not_the_good_one(tmp_path):
    from loramini.data import load_local_files

    train, dev = write_pair(tmp_path, "text,label\nhi,1\n", "sentence,label\nok,1\n", suffix=".csv")
    with pytest.raises(ValueError, match=r"train.csv: missing column\(s\) \['sentence'\]") as info:
        load_local_files(train, dev, "sst2")
    assert "dev.csv" not in str(info.value)


def test_a_pickle_model_file_is_refused_and_never_loaded(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    loramini.tiny_roberta().config.save_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 not a real pickle")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called on an untrusted file"))
    with pytest.raises(ValueError, match="pytorch_model.bin.*pickle.*safetensors") as info:
        loramini.models.load_model(str(folder))
    assert len(str(info.value).splitlines()) == 1


def test_a_pickle_adapter_file_is_refused(tmp_path, batch):
    folder = loramini.save_adapter(adapted(batch, ["query"]), tmp_path / "adapter")
    (folder / WEIGHTS_NAME).unlink()
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04 not a real pickle")
    with pytest.raises(ValueError, match="adapter_model.bin.*pickle.*safetensors"):
        loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)


def edit_config(folder, **fields):
    meta = json.loads((folder / CONFIG_NAME).read_text())
    meta.update(fields)
    (folder / CONFIG_NAME).write_text(json.dumps(meta))


def test_an_adapter_whose_alpha_would_blow_up_the_logits_is_refused(batch, tmp_path):
    folder = loramini.save_adapter(adapted(batch, ["query"]), tmp_path / "adapter")
    edit_config(folder, alpha=1e30)
    base = loramini.tiny_roberta(seed=0)
    before = logits(base, batch)
    with pytest.raises(ValueError, match="alpha=1e\\+30.*query") as info:
        loramini.load_adapter(base, folder)
    assert len(str(info.value).splitlines()) == 1
    assert not list(loramini.loramini_layers(base)) and torch.equal(logits(base, batch), before)


@pytest.mark.parametrize("seed", [2 ** 70, 2 ** 63, -1])
def test_projection_seed_out_of_range_is_refused_with_the_range(batch, tmp_path, seed):
    with pytest.raises(ValueError, match=r"projection_seed=.*0 \.\. 2\*\*63 - 1"):
        LoRAMiniConfig(projection_seed=seed)
    folder = loramini.save_adapter(adapted(batch, ["query"]), tmp_path / "adapter")
    edit_config(folder, projection_seed=seed)
    with pytest.raises(ValueError, match=r"projection_seed=.*0 \.\. 2\*\*63 - 1"):
        loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)


def test_deeply_nested_adapter_config_is_one_line(batch, tmp_path):
    folder = loramini.save_adapter(adapted(batch, ["query"]), tmp_path / "adapter")
    (folder / CONFIG_NAME).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=f"{CONFIG_NAME}.*nested") as info:
        loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("argv,message", [(["--r", "1", "0"], "--r"), (["--seed", "0", "-1"], "--seed"),
                                          (["--lr", "-1"], "--lr"), (["--epochs", "0"], "--epochs"),
                                          (["--seed", "0", "0"], "--seed"),
                                          (["--task", "foo"], "foo")])
def test_ablate_validates_every_cell_before_training(tmp_path, capsys, monkeypatch, argv, message):
    from loramini import ablation

    monkeypatch.setattr(ablation, "train_cell", lambda params: pytest.fail("a cell trained before validation"))
    with pytest.raises(SystemExit) as done:
        ablation.main(argv + ["--ab", "8x8", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ every bad input above, as a user runs it
def glue_with_a_long_field(root):
    folder = root / "SST-2"
    folder.mkdir(parents=True)
    rows = [f"{'good' if i % 2 else 'bad'} film {i}\t{i % 2}" for i in range(40)]
    (folder / "train.tsv").write_text("sentence\tlabel\n" + "word " * 30_000 + "\t1\n" + "\n".join(rows) + "\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(rows[:10]) + "\n")
    return root


def pickle_model(root):
    folder = root / "pickled"
    loramini.tiny_roberta().config.save_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 not a real pickle")
    return folder


SMALL = ["--epochs", "1", "--max-train-samples", "16", "--no-progress"]
COMMANDS = {  # name: (argv after `python`, expected exit status)
    "benchmark --seeds 0": (["benchmarks/accuracy_vs_params.py", "--seeds", "0"], 2),
    "benchmark --seeds 0 0 0": (["benchmarks/accuracy_vs_params.py", "--seeds", "0", "0", "0"], 2),
    "benchmark --epochs 0": (["benchmarks/accuracy_vs_params.py", "--epochs", "0"], 2),
    "benchmark --task foo": (["benchmarks/accuracy_vs_params.py", "--task", "foo"], 2),
    "benchmark --methods lorra": (["benchmarks/accuracy_vs_params.py", "--methods", "lorra"], 2),
    "benchmark --shapes cube": (["benchmarks/accuracy_vs_params.py", "--shapes", "cube"], 2),
    "benchmark --model /nonexistent/model": (["benchmarks/accuracy_vs_params.py", "--model", "/nonexistent/model"], 2),
    "ablate --r 1 0": (["-m", "loramini", "ablate", "--r", "1", "0"], 2),
    "ablate --seed 0 -1": (["-m", "loramini", "ablate", "--seed", "0", "-1"], 2),
    "bench --out FILE": (["-m", "loramini", "bench", "--quick", "--out", "{tmp}/a-file"], 2),
    "finetune, TSV field > 131072": (["-m", "loramini", "finetune", "--task", "sst2", "--data-dir", "{glue}", *SMALL,
                                      "--output-dir", "{tmp}/ft"], 0),
    "finetune --model pickle": (["-m", "loramini", "finetune", "--model", "{pickled}", *SMALL], 1),
    "finetune, file-size limit": (["-c", "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (2048, "
                                         "resource.getrlimit(resource.RLIMIT_FSIZE)[1])); from loramini.cli import main; "
                                         "sys.exit(main(sys.argv[1:]))", "finetune", *SMALL, "--output-dir",
                                   "{tmp}/limited"], 1),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_traceback_for_any_bad_input(tmp_path, name):
    argv, expected = COMMANDS[name]
    (tmp_path / "a-file").write_text("not a folder")
    places = {"tmp": tmp_path, "glue": glue_with_a_long_field(tmp_path / "glue") if "TSV" in name else "",
              "pickled": pickle_model(tmp_path) if "pickle" in name else ""}
    argv = [a.format(**places) for a in argv]
    if "benchmark" in name:
        argv = [str(ROOT / argv[0]), *argv[1:], "--out", str(tmp_path / "written"), "--cache", str(tmp_path / "written")]
    if "ablate" in name:
        argv += ["--output-dir", str(tmp_path / "written")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == expected, done.stderr
    if expected:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "written").exists()


def test_output_paths_are_checked_by_one_rule(tmp_path):
    from loramini.ablation import output_problem

    (tmp_path / "a-file").write_text("x")
    assert output_problem(tmp_path / "new" / "folder") is None and output_problem(tmp_path) is None
    assert output_problem(tmp_path / "a-file", folder=False) is None  # a rerun replaces its results file
    assert output_problem(tmp_path / "new" / "out.json", folder=False) is None
    assert "is a file" in output_problem(tmp_path / "a-file")
    assert "is a folder" in output_problem(tmp_path, folder=False)
    assert "is a file" in output_problem(tmp_path / "a-file" / "below", folder=False)


def test_budget_curves_groups_are_flags_the_cli_accepts():
    """Every group of benchmarks/budget_curves.py becomes finetune flags that parse to the group's settings, so a
    typo in a group fails here, not after hours of other runs (a switch is --name / --no-name, never 'True')."""
    import argparse

    from loramini.cli import build_parser, config_from_args

    curves = benchmark_module("budget_curves")
    assert curves._flag("group_by_length", True) == ["--group-by-length"]
    assert curves._flag("group_by_length", False) == ["--no-group-by-length"]
    labels = [g[0] for g in curves.GROUPS]
    assert len(set(labels)) == len(labels)
    assert {name for pair in curves.PAIRED for name in pair} <= set(labels)

    def fail(message):
        raise argparse.ArgumentError(None, message)

    parser = build_parser()
    for label, task, method, lr, rows, epochs, extra in curves.GROUPS:
        flags = ["finetune", "--task", task, "--method", method, "--lr", str(lr), "--max-train-samples", str(rows),
                 "--epochs", str(epochs), *[x for k, v in extra.items() for x in curves._flag(k, v)]]
        config = config_from_args(parser.parse_args(flags), fail)
        assert (config.method, config.lr, config.max_train_samples, config.epochs) == (method, lr, rows, epochs), label
        assert {k: getattr(config, k) for k in extra} == extra, label


def test_accuracy_vs_params_shapes_shipped_rate_and_rule(tmp_path):
    """--shapes axes varies one axis at a time; --with-shipped-rate reruns only the methods whose tuned rate is not
    the package default, at that default over the same seeds; each LoRA-Mini shape sweep gets the first-step rule."""
    from loramini.experiments import Protocol, run_protocol

    bench = benchmark_module()
    reference, variants = bench.methods(384, figure=True, shapes="axes")
    assert variants["lora"] == [{"r": 1}, {"r": 2}, {"r": 16}]
    for shape in variants["loramini"]:  # exactly one of r, a=b differs from the reference r=8, a=b=32
        assert shape["a"] == shape["b"] and (shape["r"] != 8) + (shape["a"] != 32) == 1, shape
    assert len(bench.methods(384, figure=True)[1]["loramini"]) == 11  # the whole grid stays the default

    calls = []

    def run(params):  # "loramini" peaks at 1e-2 (not its 3e-3 default); "lora" at its default 3e-3
        calls.append(params)
        best = 1e-2 if params["method"] == "loramini" else 3e-3
        return {"metric": 0.9 - 0.1 * abs(math.log10(params["lr"] / best)), "main_metric": "accuracy",
                "adapter_params": 1, "trainable_params": 1, "lr": params["lr"], "wall_time_s": 1.0}

    methods = {m: reference[m] for m in ("loramini", "lora")}
    protocol = Protocol(base={"task": "t", "model": "tiny"}, methods=methods,
                        lr_grids={"loramini": [3e-3, 1e-2, 3e-2], "lora": [1e-3, 3e-3, 1e-2]}, seeds=[0, 1, 2])
    found = run_protocol(protocol, tmp_path, run=run, log=lambda _: None)
    shipped = {"loramini": 3e-3, "lora": 3e-3}
    cells = bench.shipped_rate_cells(found, methods, protocol, shipped, tmp_path, run=run)
    assert [(c["method"], c["lr"], c["at"]) for c in cells] == [("loramini", 3e-3, "shipped rate")]
    assert cells[0]["seeds"] == [0, 1, 2] and cells[0]["metric_mean"] == pytest.approx(0.9 - 0.1 * math.log10(10 / 3))
    assert sorted(c["seed"] for c in calls if c["lr"] == 3e-3 and c["method"] == "loramini"
                  and "eval_split" not in c) == [0, 1, 2]

    results = {"lr_sweeps": [{"task": "t", "method": "loramini", "best_lr": 1e-2}],
               "shape_sweeps": [{"task": "t", "method": "loramini", "r": 16, "a": 32, "b": 32, "best_lr": 1e-2},
                                {"task": "t", "method": "lora", "r": 2, "best_lr": 1e-2}]}
    bench.add_first_step_rule(results, reference, 64)
    mini, lora = results["shape_sweeps"]
    assert mini["rule_lr"] == pytest.approx(5e-3, rel=0.15) and mini["tuned_over_rule"] == pytest.approx(2, rel=0.15)
    assert "rule_lr" not in lora
