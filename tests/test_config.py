"""Tests for ``conf/``: every file composes, validates and names a usable environment; every value is documented.

Files are discovered by globbing, so a new env, agent, logger or experiment file is covered
without touching this module.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import CONF_DIR, compose_config

from pbrl.agents import agent_config
from pbrl.envs import make_env, spec_of, suites
from pbrl.errors import ConfigError
from pbrl.workspace import validate


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _values(path: Path) -> dict:
    """The file's own settings (its ``defaults`` list left out)."""
    data = yaml.safe_load(path.read_text()) or {}
    data.pop("defaults", None)
    return data


def _check_valid(cfg: dict) -> None:
    validate(cfg)
    agent_config(cfg["agent"])


def _subset(expected: dict, actual: dict, where: str = "") -> None:
    for key, value in expected.items():
        assert key in actual, f"{where}{key} missing from the composed config"
        if isinstance(value, dict):
            _subset(value, actual[key], f"{where}{key}.")
        else:
            assert actual[key] == value, f"{where}{key}: composed {actual[key]!r}, file says {value!r}"


def test_groups_are_not_empty():
    for group in ("env", "agent", "logger", "experiment"):
        assert _names(group), f"conf/{group}/ has no yaml files"


def test_default_config_validates():
    cfg = compose_config()
    _check_valid(cfg)
    assert cfg["env"]["id"] == "Pendulum-v1" and cfg["agent"]["name"] == "sac"


@pytest.mark.parametrize("name", _names("env"))
def test_env_configs_compose_and_make_a_box_env(name):
    cfg = compose_config([f"env={name}"])
    _check_valid(cfg)
    _subset(_values(CONF_DIR / "env" / f"{name}.yaml"), cfg["env"], "env.")
    env_cfg = cfg["env"]
    try:
        env = make_env(env_cfg["id"], env_cfg["kwargs"], env_cfg["max_episode_steps"])
    except ConfigError as exc:
        if suites.suite_of(env_cfg["id"]) is None:
            raise
        pytest.skip(str(exc))  # a DeepMind Control or Meta-World task without its extra (make setup installs both)
    try:
        spec = spec_of(env, env_cfg["id"])
        assert env.action_space.shape == (spec.action_dim,)
        assert spec.max_episode_steps is not None  # the Workspace needs a time limit
    finally:
        env.close()


@pytest.mark.parametrize("name", _names("agent"))
def test_agent_configs_compose_and_validate(name):
    cfg = compose_config([f"agent={name}"])
    _check_valid(cfg)
    _subset(_values(CONF_DIR / "agent" / f"{name}.yaml"), cfg["agent"], "agent.")


@pytest.mark.parametrize("name", _names("logger"))
def test_logger_configs_compose_and_validate(name):
    cfg = compose_config([f"logger={name}"])
    _check_valid(cfg)
    _subset(_values(CONF_DIR / "logger" / f"{name}.yaml"), cfg["logger"], "logger.")


@pytest.mark.parametrize("name", _names("experiment"))
def test_experiment_presets_compose_validate_and_take_effect(name):
    path = CONF_DIR / "experiment" / f"{name}.yaml"
    cfg = compose_config([f"experiment={name}"])
    _check_valid(cfg)
    _subset(_values(path), cfg)  # @package _global_ and listed after _self_: the preset wins
    for entry in yaml.safe_load(path.read_text()).get("defaults", []):
        for key, value in (entry.items() if isinstance(entry, dict) else []):
            group = key.removeprefix("override ").strip("/")
            if group == "env":  # the env's own values, except those the preset sets itself
                preset_env = yaml.safe_load(path.read_text()).get("env", {})
                env_values = {k: v for k, v in _values(CONF_DIR / "env" / f"{value}.yaml").items()
                              if k not in preset_env}
                _subset(env_values, cfg["env"], "env.")


def test_experiment_values_still_yield_to_the_command_line():
    name = _names("experiment")[0]
    cfg = compose_config([f"experiment={name}", "steps=123", "seed=4"])
    assert (cfg["steps"], cfg["seed"]) == (123, 4)


@pytest.mark.parametrize("override, field", [
    ("steps=0", "steps"), ("steps=1.5", "steps"), ("seed=abc", "seed"),
    ("seed=-1", "seed"),  # numpy's generators reject negative seeds: must fail here, not in set_seed
    ("eval.episodes=1.5", "eval.episodes"),  # range(1.5) would crash at the first evaluation
    ("buffer_size=1.5", "buffer_size"),  # a capacity counts transitions
    ("precision=fp16", "precision"), ("eval.video=sometimes", "eval.video"), ("snapshot.every=-1", "snapshot.every"),
    ("env.max_episode_steps=0", "env.max_episode_steps"),
])
def test_validate_names_the_bad_field(override, field):
    cfg = compose_config([override])
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert info.value.field == field


# ------------------------------------------------------------------------- documented defaults
_KEY = re.compile(r"^(\s*)([A-Za-z_][\w.-]*)\s*:(.*)$")


def _lines(path: Path):
    """(dotted key, has a value, documented) for each ``key:`` line outside ``defaults`` and ``hydra``.

    A line is documented by a trailing ``# comment`` or a full-line comment right above it.
    """
    stack: list[tuple[int, str]] = []
    previous_is_comment = False
    skip_indent: int | None = None  # inside a `defaults:` list or the `hydra:` section
    for raw in path.read_text().splitlines():
        text = raw.rstrip()
        stripped = text.lstrip()
        indent = len(text) - len(stripped)
        if not stripped:
            previous_is_comment = False
            continue
        if stripped.startswith("#"):
            previous_is_comment = not stripped.startswith("# @package")
            continue
        if skip_indent is not None and (indent > skip_indent or stripped.startswith("-")):
            previous_is_comment = False
            continue
        skip_indent = None
        match = _KEY.match(text)
        assert match, f"{path}: cannot parse line {raw!r}"
        key, rest = match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        value = rest.split("#", 1)[0].strip()
        documented = "#" in rest or previous_is_comment
        previous_is_comment = False
        if key in ("defaults", "hydra") and not stack:
            skip_indent = indent
            continue
        stack.append((indent, key))
        yield dotted, bool(value), documented


def _package(path: Path, conf_dir: Path) -> str:
    """The config prefix a file's keys land under (``agent.``, ``env.``, ... or ``""`` for global)."""
    if "# @package _global_" in path.read_text() or path.parent == conf_dir:
        return ""
    return path.parent.name + "."


def _is_preset(path: Path, conf_dir: Path) -> bool:
    """A group file that extends another one through its defaults list (agent variants, experiments)."""
    return path.parent != conf_dir and "defaults" in (yaml.safe_load(path.read_text()) or {})


def undocumented(conf_dir: Path) -> list[str]:
    """Value lines without a comment.

    A base file must comment every value. A preset may leave an override uncommented when the key
    is documented where it is defined (the base file), since the meaning is the same.
    """
    files = sorted(conf_dir.rglob("*.yaml"))
    documented_keys: set[str] = set()
    entries = []
    for path in files:
        prefix, preset = _package(path, conf_dir), _is_preset(path, conf_dir)
        for dotted, has_value, documented in _lines(path):
            if has_value:
                entries.append((path, prefix + dotted, documented, preset))
                if documented and not preset:
                    documented_keys.add(prefix + dotted)
    return [f"{path.relative_to(conf_dir)}: {key}" for path, key, documented, preset in entries
            if not documented and not (preset and key in documented_keys)]


def test_every_config_value_is_documented():
    missing = undocumented(CONF_DIR)
    assert not missing, "config values without a comment: " + ", ".join(missing)


def test_documentation_check_catches_an_undocumented_value(tmp_path):
    (tmp_path / "agent").mkdir()
    (tmp_path / "config.yaml").write_text("# top\nseed: 0  # seeds everything\n\neval:\n  every: 5\n")
    (tmp_path / "agent" / "base.yaml").write_text("lr: 1.0  # step size\nwidth: 3\n")
    (tmp_path / "agent" / "preset.yaml").write_text("defaults:\n  - base\n  - _self_\nlr: 2.0\ndepth: 4\n")
    assert undocumented(tmp_path) == ["agent/base.yaml: agent.width", "agent/preset.yaml: agent.depth",
                                      "config.yaml: eval.every"]


def test_auto_threads_leave_out_cores_that_other_work_keeps_busy():
    import os

    from pbrl.common.utils import resolve_threads

    cores = len(os.sched_getaffinity(0))
    assert resolve_threads("auto", busy=0.0) == cores
    assert resolve_threads("auto", parallel_jobs=cores, busy=0.0) == 1
    assert resolve_threads("auto", busy=float(cores)) == 1  # a fully busy machine: one thread, never zero
    assert resolve_threads("auto", busy=cores + 3.0) == 1
    assert resolve_threads(3, busy=float(cores)) == 3  # an explicit count is kept as given


@pytest.mark.parametrize("overrides, task", [([], "Pendulum-v1"), (["experiment=bpref_button_press"], "button-press-v3"),
                                             (["experiment=bpref_walker_walk"], "walker-walk-v0")])
def test_a_runs_default_folder_names_its_task_in_one_folder(overrides, task):
    from pbrl.train import compose

    folder = Path(compose(overrides, hydra_node=True).hydra.run.dir)
    assert folder.parent.parent == Path("outputs/runs") and re.fullmatch(rf"\d\d-\d\d-\d\d_{task}_s0", folder.name)
