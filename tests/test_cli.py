"""`python -m loramini`: help, one-line errors, finetune's results.json, the demo's table."""

import json
import subprocess
import sys

import pytest

from loramini.cli import build_parser, main, parse_targets

FINETUNE_FLAGS = ["--model", "--task", "--data-dir", "--method", "--r", "--a", "--b", "--alpha", "--target-modules",
                  "--lr", "--epochs", "--batch-size", "--max-length", "--max-train-samples", "--seed", "--output-dir"]



def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as done:
        main(["finetune", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in FINETUNE_FLAGS:
        assert flag in text, flag
    for action in build_parser()._subparsers._group_actions[0].choices["finetune"]._actions:
        assert action.help, action.dest  # no undocumented flag


@pytest.mark.parametrize("argv,needle", [
    (["finetune", "--r", "zero"], "--r"),
    (["finetune", "--r", "0"], "--r 0: must be an integer >= 1"),
    (["finetune", "--method", "qlora"], "--method"),
    (["finetune", "--bogus"], "--bogus"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_flag_or_value_is_one_line_and_nonzero(argv, needle, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_bad_value_found_while_running_is_one_line(tmp_path, capsys):
    code = main(["finetune", "--task", "nosuchtask", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "nosuchtask" in err
    with pytest.raises(SystemExit) as done:  # r > min(a, b): TrainConfig's rule, found while parsing the flags
        main(["finetune", "--r", "64", "--output-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "--r 64" in err and "min(a, b)" in err


def test_no_traceback_from_a_real_process():
    done = subprocess.run([sys.executable, "-m", "loramini", "finetune", "--epochs", "-3"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_target_modules_parsing():
    assert parse_targets("query,value") == ["query", "value"]
    assert parse_targets("attention") == "attention"
    assert parse_targets(r".*\.(query|key)") == r".*\.(query|key)"


def test_finetune_writes_results_json(tmp_path, capsys):
    out = tmp_path / "ft"
    code = main(["finetune", "--model", "tiny", "--task", "synthetic-regression", "--method", "loramini", "--r", "4",
                 "--epochs", "1", "--max-train-samples", "320", "--output-dir", str(out), "--no-progress"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "synthetic-regression" and results["main_metric"] == "combined"
    assert set(results["final"]["validation"]) == {"pearson", "spearman", "combined"}
    assert results["params"]["adapter"] == 4 * 4 * 64 and results["adapter_bytes"] > 0
    assert results["config"]["r"] == 4
    assert "results.json" in capsys.readouterr().out


def test_demo_prints_one_table_and_saves_the_adapter(tmp_path, capsys):
    from loramini.cli import demo

    rows = demo(epochs=1, output_dir=str(tmp_path), progress=False)
    out = capsys.readouterr().out
    assert [r["method"] for r in rows] == ["loramini", "lora", "full"]
    for header in ("trainable params", "bytes on disk", "accuracy", "time (s)"):
        assert header in out
    by = {r["method"]: r for r in rows}
    assert by["loramini"]["params"]["adapter"] < by["lora"]["params"]["adapter"]
    assert by["loramini"]["adapter_bytes"] < by["lora"]["adapter_bytes"] < by["full"]["adapter_bytes"]
    assert (tmp_path / "loramini" / "adapter" / "adapter_config.json").is_file()
    assert all(r["metric"] > 0.6 for r in rows)
