"""The README's Python example runs as printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import REPO


def test_the_readmes_python_example_trains_a_run_and_writes_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture):
    readme = (REPO / "README.md").read_text()
    section = readme.split("### From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (From Python)", "exec"), {})
    run = tmp_path / "runs" / "from_python"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 2000 and summary["env_id"] == "Pendulum-v1"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(summary["final_eval_return"])
    assert {"config.yaml", "metrics.csv", "agent.pt", "reward_model.pt"} <= {p.name for p in run.iterdir()}
