"""Benchmark suites beyond gymnasium's own: DeepMind Control (through shimmy) and Meta-World (v3).

Both are optional extras, imported only when a run names one of their ids:

- ``dm_control/<domain>-<task>-v0`` (``pip install 'pbrl[dmc]'``): shimmy's gymnasium port of the
  DeepMind Control Suite. Its dict observations are flattened (keys in sorted order), its time
  limit (1000 control steps) becomes the episode limit, and the simulator state is dm_control's
  physics state (qpos, qvel, act).
- ``Meta-World/goal_observable`` with ``env.kwargs.env_name=<task>-v3`` (``pip install
  'pbrl[metaworld]'``): the goal-observable single-task envs PEBBLE used. As in B-Pref
  (``utils.make_metaworld_env``) the goal is re-drawn at every reset (``_freeze_rand_vec`` off), and
  episodes are 500 steps (the benchmark's ``max_path_length``). ``info["success"]`` is the task's
  success flag; evaluation logs the share of episodes that reach it (``eval_success_rate``).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import gymnasium as gym

from pbrl.errors import ConfigError

# id prefix -> (modules that register the ids, the extra that installs them)
SUITES = {"dm_control/": (("shimmy", "dm_control"), "dmc"), "Meta-World/": (("metaworld",), "metaworld")}
METAWORLD_IDS = ("Meta-World/goal_observable", "Meta-World/goal_hidden")


def suite_of(env_id: str) -> str | None:
    """The suite prefix of ``env_id`` (``dm_control/`` or ``Meta-World/``), or None for any other id."""
    return next((prefix for prefix in SUITES if env_id.startswith(prefix)), None)


def task_name(env_id: str, kwargs: dict | None = None) -> str:
    """The name a run's task goes by in summaries, progress bars and reports: ``env_id``, and for Meta-World, whose
    ids take the task as a keyword, the id and that task (``Meta-World/goal_observable/button-press-v3``)."""
    task = (kwargs or {}).get("env_name")
    return f"{env_id}/{task}" if suite_of(env_id) == "Meta-World/" and task else env_id


def register(env_id: str) -> None:
    """Import the package that registers ``env_id``'s suite, or say in one line which extra installs it."""
    suite = suite_of(env_id)
    if suite is None:
        return
    modules, extra = SUITES[suite]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError("env.id", f"{env_id} needs the {extra} extra ({exc}); install it with "
                                        f"pip install 'pbrl[{extra}]' (make setup installs it)") from None
        except AttributeError as exc:
            raise version_mismatch(env_id, exc) from None
    if suite == "Meta-World/":
        _patch_metaworld_welds()
    else:
        _quiet_dmc_asset_warning()


class _DropSettotalmass(logging.Filter):
    """Drops MuJoCo's deprecation notice for ``settotalmass``, an attribute of dm_control's own cheetah
    model (not something a user can change), logged through absl three times at every env made."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "attribute 'settotalmass' is deprecated" not in record.getMessage()


def _quiet_dmc_asset_warning() -> None:
    absl = logging.getLogger("absl")
    if not any(isinstance(f, _DropSettotalmass) for f in absl.filters):
        absl.addFilter(_DropSettotalmass())


def _patch_metaworld_welds() -> None:
    """Meta-World writes its mocap weld as 11 numbers (MuJoCo 3.3's eq_data); MuJoCo 3.17 keeps 12 per constraint.

    The 12th is a flag that MuJoCo's compiler sets to 0 when the weld's relative pose is given explicitly,
    as Meta-World's is (identity pose, torque scale 5), so the patched method writes the same 11 and a 0.
    """
    import mujoco
    import numpy as np
    from metaworld import sawyer_xyz_env

    env_cls = sawyer_xyz_env.SawyerXYZEnv
    if getattr(env_cls, "_pbrl_weld_patch", False):
        return

    def reset_mocap_welds(self) -> None:
        if self.model.nmocap > 0 and self.model.eq_data is not None:
            for i in range(self.model.eq_data.shape[0]):
                if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                    weld = np.zeros(self.model.eq_data.shape[1])
                    weld[:11] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0]
                    self.model.eq_data[i] = weld

    env_cls.reset_mocap_welds = reset_mocap_welds
    env_cls._pbrl_weld_patch = True


def version_mismatch(env_id: str, exc: Exception) -> ConfigError:
    """dm-control and Meta-World read MuJoCo's model by field name: another MuJoCo fails with an AttributeError."""
    import mujoco

    extra = SUITES[suite_of(env_id)][1]
    return ConfigError("env.id", f"{env_id} does not run with MuJoCo {mujoco.__version__} ({exc}); install the "
                                 f"versions pbrl pins: pip install -c constraints.txt 'pbrl[{extra}]' "
                                 "(make setup does)")


def check_kwargs(env_id: str, kwargs: dict[str, Any]) -> None:
    """Meta-World's single-task ids need the task's name: one line naming the field and the choices."""
    if env_id not in METAWORLD_IDS:
        return
    import metaworld

    names = sorted(name.removesuffix("-goal-observable") for name in metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE)
    name = kwargs.get("env_name")
    if name is None or str(name).removesuffix("-goal-observable").removesuffix("-goal-hidden") not in names:
        import difflib

        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6) if name else []
        hint = f"did you mean {', '.join(close)}?" if close else f"allowed: {', '.join(names[:8])}, ... ({len(names)})"
        raise ConfigError("env.kwargs.env_name", f"{env_id} needs a Meta-World v3 task name, got {name!r}; {hint}")


def default_time_limit(env_id: str) -> int | None:
    """The episode length a suite's env ends at by itself (gymnasium's spec does not record it)."""
    if env_id in METAWORLD_IDS:
        return 500  # metaworld.sawyer_xyz_env.SawyerXYZEnv.max_path_length
    return None  # dm_control: read from the made env (adapt)


def adapt(env: gym.Env, env_id: str, max_episode_steps: int | None) -> gym.Env:
    """The suite-specific wrappers: flat observations and a recorded time limit (DMC), fresh goals (Meta-World)."""
    suite = suite_of(env_id)
    if suite == "dm_control/":
        if isinstance(env.observation_space, gym.spaces.Dict):
            env = gym.wrappers.FlattenObservation(env)
        if max_episode_steps is None and env.spec is not None and env.spec.max_episode_steps is None:
            limit = int(dmc_physics_env(env)._step_limit)  # time limit / control timestep: 1000 for the suite's tasks
            env = gym.wrappers.TimeLimit(env, limit)
        # clips play in real time: one frame per control step (shimmy reports 25 fps whatever the task's timestep)
        env.metadata = {**env.metadata, "render_fps": 1.0 / dmc_physics_env(env).control_timestep()}
    elif suite == "Meta-World/":
        env = MetaWorldTask(env)
    return env


class MetaWorldTask(gym.Wrapper):
    """A new goal and object placement at every reset, drawn from the reset's seed.

    B-Pref draws a new goal per episode (``_freeze_rand_vec`` off). Meta-World v3's ``reset`` ignores its
    seed and, unless ``seeded_rand_vec`` is set, draws from numpy's global generator: here the seed given
    to ``reset`` seeds the env's own generator, so an episode is reproducible from its seed.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        env.unwrapped._freeze_rand_vec = False
        env.unwrapped.seeded_rand_vec = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.env.unwrapped.seed(seed)
        return self.env.reset(options=options)


def task_state(env: gym.Env):
    """Meta-World's task vector (goal and object placement, set in the model at reset), else None."""
    return getattr(env.unwrapped, "_last_rand_vec", None) if hasattr(env.unwrapped, "seeded_rand_vec") else None


def set_task_state(env: gym.Env, rand_vec) -> None:
    """Place the goal and objects of ``rand_vec`` (a no-op where they are already there)."""
    import numpy as np

    u = env.unwrapped
    if u._last_rand_vec is not None and np.array_equal(u._last_rand_vec, rand_vec):
        return
    frozen = u._freeze_rand_vec
    u._last_rand_vec, u._freeze_rand_vec = np.array(rand_vec), True
    try:
        u.reset_model()  # moves the objects and goal sites of this task vector (the caller then sets qpos and qvel)
    finally:
        u._freeze_rand_vec = frozen


def dmc_physics_env(env: gym.Env):
    """The dm_control environment inside shimmy's wrapper (its ``physics`` holds the MuJoCo model and data)."""
    return env.unwrapped._env
