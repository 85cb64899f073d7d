"""Environments: building any gymnasium task for pbrl, and simulator-state capture for re-rendering."""

from pbrl.envs.render import configure_mujoco_gl

# Choose a headless GL backend (unless MUJOCO_GL is set) before gymnasium first imports mujoco,
# which reads the variable once at import: then rendering works without a display.
configure_mujoco_gl()

from pbrl.envs.make import EnvSpec, get_sim_state, make_env, set_sim_state, sim_state_dim, spec_of

__all__ = ["EnvSpec", "make_env", "get_sim_state", "set_sim_state", "sim_state_dim", "spec_of", "configure_mujoco_gl"]
