"""Every notebook under ``notebooks/`` runs top to bottom on fake runs, and is stored without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture
def fake_runs(tmp_path: Path, fake_run) -> Path:
    """Two envs, two precisions, several seeds; one run unfinished (no run.json) and one failed (run.json)."""
    root = tmp_path / "runs"
    for precision, offset in (("fp32", 0.0), ("bf16", -20.0)):
        for seed in range(3):
            fake_run(root / f"pendulum/precision={precision},seed={seed}", "Pendulum-v1", seed,
                     [-1200.0 + offset, -500.0 - seed, -150.0 - 5 * seed + offset], precision=precision)
    fake_run(root / "hopper/seed=0", "Hopper-v5", 0, [300.0, 1200.0, 2100.0], steps_per_s=60.0)
    fake_run(root / "hopper/seed=1", "Hopper-v5", 1, [280.0, 1000.0], finished=False)
    failed = fake_run(root / "hopper/seed=2", "Hopper-v5", 2, [250.0], finished=False)
    (failed / "run.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: NaN in the critic loss",
                                                 "command": "pbrl-train seed=2", "host": "test", "cpu": "test"}))
    return root


def test_notebooks_exist():
    assert NOTEBOOKS, "expected at least notebooks/analysis.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} cell {index} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, fake_runs: Path, python3_kernel: str, monkeypatch):
    monkeypatch.setenv("PBRL_RUNS", str(fake_runs))  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=python3_kernel, timeout=120,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    shown = "".join(out.get("data", {}).get("text/plain", "") for out in outputs)  # tables and displayed frames
    if path.name == "analysis.ipynb":
        assert "9 runs below" in text and "7 finished" in text and "1 unfinished" in text and "1 failed" in text
        assert "RuntimeError: NaN in the critic loss" in shown  # the runs table: the failed run with its error
        assert "1 failed, 1 unfinished" in shown  # the aggregate table counts the runs that did not finish
        assert any("image/png" in out.get("data", {}) for out in outputs), "expected the curves plot"
        # the probability of improvement: fp32 beats bf16 on every Pendulum seed; Hopper has no bf16 run
        assert "P(precision=fp32 > precision=bf16) on final_eval_return" in text
        tables = [out.get("data", {}).get("text/plain", "") for out in outputs]
        poi = next(table for table in tables if "P(A > B)" in table)
        assert "Pendulum-v1" in poi and "Hopper-v5" not in poi and " 1.0 " in poi
