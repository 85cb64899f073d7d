"""The run's settings: top-level checks, the training env's kwargs, and which settings a resume may change."""

from __future__ import annotations

from typing import Any, Mapping

from pbrl.common.logger import WANDB_MODES
from pbrl.common.precision import PRECISIONS
from pbrl.errors import ConfigError, check_choice, check_int

# settings a resumed run may change: how it runs and logs, and how long, not what it learns
RESUMABLE_CHANGES = ("steps", "device", "threads", "progress", "logger", "snapshot", "tag",
                     "reward_model.relabel_batch", "teacher.serve", "teacher.host", "teacher.port",
                     "teacher.instruction", "teacher.repeat_fraction", "teacher.repeat_gap", "teacher.undo_grace_s",
                     "teacher.clip")  # keys or key prefixes; relabel chunking and how a person's clips look change no result
VIDEO_MODES = ("none", "last", "all")
EVAL_METRICS = ("flips",)  # extra evaluation metrics from the simulator state (pbrl/envs/flips.py)


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the top-level settings, naming the field and what is allowed on error."""
    check_int("seed", cfg["seed"], minimum=0)
    check_int("steps", cfg["steps"], minimum=1)
    check_int("seed_steps", cfg["seed_steps"], minimum=0)
    check_int("buffer_size", cfg["buffer_size"], minimum=1)
    check_choice("precision", cfg["precision"], PRECISIONS)
    check_int("eval.every", cfg["eval"]["every"], minimum=0)
    check_int("eval.episodes", cfg["eval"]["episodes"], minimum=1)
    check_choice("eval.video", cfg["eval"]["video"], VIDEO_MODES)
    metrics = cfg["eval"].get("metrics", [])
    if not isinstance(metrics, list) or any(m not in EVAL_METRICS for m in metrics):
        raise ConfigError("eval.metrics", f"got {metrics!r}; allowed: a list of {', '.join(EVAL_METRICS)}")
    if "flips" in metrics and not cfg["env"]["id"].split("/")[-1].startswith(("Hopper", "Walker2d", "HalfCheetah")):
        raise ConfigError("eval.metrics", f"flips reads a planar body's pitch (Hopper, Walker2d, HalfCheetah), "
                                          f"not {cfg['env']['id']}")
    check_int("snapshot.every", cfg["snapshot"]["every"], minimum=0)
    check_choice("logger.wandb.mode", cfg["logger"]["wandb"].get("mode", "disabled"), WANDB_MODES)
    check_int("env.action_repeat", cfg["env"].get("action_repeat", 1), minimum=1)
    if cfg["env"].get("action_repeat", 1) != 1 and cfg.get("teacher", {}).get("name") == "human":
        raise ConfigError("env.action_repeat", "a person's clips show one frame per stored step; teacher=human "
                                               "needs env.action_repeat=1")
    if not isinstance(cfg["env"].get("terminate", True), bool):
        raise ConfigError("env.terminate", f"got {cfg['env']['terminate']!r}; allowed: true, false")
    limit = cfg["env"].get("max_episode_steps")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError("env.max_episode_steps", f"got {limit!r}; allowed: null (the env's own limit) or an integer > 0")


def train_kwargs(env_cfg: Mapping[str, Any]) -> Any:
    """gymnasium.make kwargs of the training env: ``env.terminate=false`` adds terminate_when_unhealthy=False.

    Evaluation always uses the env as registered (plus ``env.kwargs``), so eval returns compare
    with plain SAC's whatever the training env does.
    """
    kwargs = env_cfg.get("kwargs")
    if env_cfg.get("terminate", True):
        return kwargs  # as given; make_env validates it
    if "terminate_when_unhealthy" not in _env_parameters(env_cfg["id"]):
        raise ConfigError("env.terminate", f"{env_cfg['id']} has no terminate_when_unhealthy switch; "
                                           "env.terminate=false works for Hopper, Walker2d, Ant, Humanoid(Standup)")
    return {**(kwargs if isinstance(kwargs, Mapping) else {}), "terminate_when_unhealthy": False}


def has_unhealthy_termination(env_cfg: Mapping[str, Any]) -> bool:
    """Whether the env ends episodes when the body falls (it has a ``terminate_when_unhealthy`` switch left on)."""
    kwargs = env_cfg.get("kwargs") or {}
    if kwargs.get("terminate_when_unhealthy") is False:
        return False
    return "terminate_when_unhealthy" in _env_parameters(env_cfg["id"])


def _env_parameters(env_id: str) -> set[str]:
    """The keyword arguments the env's class takes (empty when its signature cannot be read)."""
    import inspect

    import gymnasium

    from pbrl.envs import suites

    suites.register(env_id)
    entry = gymnasium.spec(env_id).entry_point
    env_cls = gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    try:
        return set(inspect.signature(env_cls).parameters)
    except (TypeError, ValueError):
        return set()


def resumable(key: str) -> bool:
    """May ``key`` (dotted) differ between a snapshot and the run that resumes it?"""
    return any(key == r or key.startswith(r + ".") for r in RESUMABLE_CHANGES)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"tau": 0.005}}`` -> ``{"agent.tau": 0.005}``."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume(saved: Mapping[str, Any], cfg: Mapping[str, Any], run_dir, say) -> None:
    """Refuse to resume a snapshot taken with settings that change what is learned; note settings it predates."""
    old, new = flatten(saved), flatten(cfg)
    changed = sorted(k for k in set(old) | set(new) if not resumable(k) and k in old and old.get(k) != new.get(k))
    added = sorted(set(new) - set(old))
    if added:  # settings newer than the snapshot (a newer pbrl): keep the run, say what it now uses
        say(f"note: {run_dir} was snapshotted before these settings existed; resuming with "
            + ", ".join(f"{k}={new[k]!r}" for k in added))
    if changed:
        key = changed[0]
        raise ConfigError(key, f"{run_dir} holds a snapshot of a run with {key}={old.get(key)!r}; rerun "
                               "with the same settings or use a new run directory")
