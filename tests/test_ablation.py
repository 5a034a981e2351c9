"""The ablation runner: grid expansion, caching, resume, summaries."""

import json

import pytest

from loramini.ablation import cell_key, grid_cells, run_ablation, summarize


def test_grid_cells_cover_every_combination():
    cells = grid_cells({"r": [1, 2], "ab": [(8, 8), (16, 4)]}, fixed={"task": "synthetic"})
    assert len(cells) == 4
    assert {(c["r"], c["ab"]) for c in cells} == {(1, (8, 8)), (1, (16, 4)), (2, (8, 8)), (2, (16, 4))}
    assert all(c["task"] == "synthetic" for c in cells)


def test_empty_grid_values_are_refused():
    with pytest.raises(ValueError, match=r"grid\['r'\]"):
        grid_cells({"r": []})


def test_results_are_cached_and_reruns_skip_finished_cells(tmp_path):
    calls = []

    def run_cell(params):
        calls.append(params["r"])
        return {"accuracy": 0.5 + 0.1 * params["r"] + 0.01 * params["ab"][0]}

    grid = {"r": [1, 2], "ab": [(1, 1), (3, 3)]}
    first = run_ablation(grid, run_cell, tmp_path)
    assert sorted(calls) == [1, 1, 2, 2] and not first["cached"].any()
    assert len(list(tmp_path.glob("cell-*.json"))) == 4

    grid["r"].append(4)  # a bigger grid runs only the new cells
    second = run_ablation(grid, run_cell, tmp_path)
    assert sorted(calls) == [1, 1, 2, 2, 4, 4]
    assert second["cached"].sum() == 4
    stats = summarize(second, "accuracy", ["r"])
    assert stats.set_index("r")["mean"].to_dict() == pytest.approx({1: 0.62, 2: 0.72, 4: 0.92})


def test_a_failed_cell_leaves_no_cache_file(tmp_path):
    def run_cell(params):
        if params["r"] == 2:
            raise RuntimeError("killed")
        return {"accuracy": 1.0}

    with pytest.raises(RuntimeError):
        run_ablation({"r": [1, 2]}, run_cell, tmp_path)
    files = list(tmp_path.glob("cell-*.json"))
    assert [json.loads(f.read_text())["params"]["r"] for f in files] == [1]
    assert cell_key({"r": 1}) in files[0].name


def test_ablate_cli_runs_caches_and_resumes(tmp_path, capsys):
    from loramini.ablation import main

    argv = ["--r", "1", "2", "--ab", "4x4", "--targets", "query", "--epochs", "1", "--max-train-samples", "64",
            "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "results.csv")
    assert sorted(table["r"]) == [1, 2] and not table["cached"].any()
    assert (table["adapter_params"] == table["r"] * (4 + 4) * 2).all()  # query in 2 layers, r·(a+b) each
    assert table["metric"].between(0, 1).all() and (tmp_path / "metric_vs_r.png").stat().st_size > 0
    assert main(argv) == 0
    assert pd.read_csv(tmp_path / "results.csv")["cached"].all()  # the rerun read every cell back


def test_ablate_cli_rejects_bad_widths(tmp_path):
    from loramini.ablation import main

    with pytest.raises(SystemExit):
        main(["--ab", "16by16", "--output-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--r", "8", "--ab", "4x4", "--output-dir", str(tmp_path)])


def test_ablate_usage_errors_are_one_line(tmp_path, capsys):
    from loramini.ablation import main

    expected = {"--r 16 with --ab 8x8": ["--r", "16", "--ab", "8x8"], "--ab 8y": ["--ab", "8y"],
                "'lorax'": ["--method", "lorax"]}
    for message, argv in expected.items():
        with pytest.raises(SystemExit) as exit_info:
            main(argv + ["--output-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
