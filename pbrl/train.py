"""``pbrl-train``: the hydra entry point (``python -m pbrl.train`` is the same).

Bad input ends with ``pbrl-train: error: <field>: <what is allowed>`` and exit status 2, never a
traceback: ConfigError is raised by validation everywhere and caught here once. In a local joblib sweep the
run's worker reports it (or a stop by a signal) to the sweep instead, which says it in one line and exits 1 once
the other runs have ended.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

import hydra
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pbrl.envs.render import configure_mujoco_gl
from pbrl.envs.suites import task_name
from pbrl.errors import ConfigError
from pbrl.lifecycle import Preempted

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _gpus(device: str) -> int:
    """``${pbrl_gpus:${device}}`` in the cluster launcher presets: one GPU per job when the run asks for CUDA."""
    return 1 if str(device).startswith("cuda") else 0


def _run_name(override_dirname: str, limit: int = 200) -> str:
    """A sweep run's folder name: its overrides, cut and given a hash when too long for a file name (255 bytes)."""
    if len(override_dirname.encode()) <= limit:
        return override_dirname
    digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:12]
    return override_dirname.encode()[: limit - 13].decode(errors="ignore") + "~" + digest


def _task_dir(env: DictConfig) -> str:
    """A run folder's task part (``${pbrl_task_dir:${env}}``): the task's last name, no ``/`` (``button-press-v3``,
    ``walker-walk-v0``, ``Hopper-v5``)."""
    return task_name(env.id, env.get("kwargs")).rsplit("/", 1)[-1]


OmegaConf.register_new_resolver("pbrl_gpus", _gpus, replace=True)
OmegaConf.register_new_resolver("pbrl_task_dir", _task_dir, replace=True)
OmegaConf.register_new_resolver("pbrl_run_name", _run_name, replace=True)


def _launcher_cpus() -> int | None:
    """The CPUs a cluster launcher gives each run (submitit's cpus_per_task, Ray's num_cpus), if it says."""
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    cpus = OmegaConf.select(launcher, "cpus_per_task") or OmegaConf.select(launcher, "ray.remote.num_cpus")
    return int(cpus) if cpus else None


def _parallel_jobs() -> int:
    """How many runs share this machine right now (joblib multirun jobs), for thread allotment."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return 1
    n_jobs = OmegaConf.select(hc, "launcher.n_jobs", default=1) or 1
    if n_jobs < 0:  # joblib's -1: all cores
        import os

        n_jobs = os.cpu_count() or 1
    return int(n_jobs)


def compose(overrides: Sequence[str] = (), hydra_node: bool = False) -> DictConfig:
    """The config ``pbrl-train <overrides>`` would run with, unresolved, for scripts, notebooks and tests.

    ``hydra_node=True`` keeps hydra's own node (``cfg.hydra``: the launcher, and in ``hydra.runtime.choices`` the
    option chosen in each config group)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=hydra_node)


class LocalSweepSignals(Callback):
    """A local joblib sweep stops as a whole on Ctrl-C, every run with its snapshot (``hydra.callbacks`` in conf/).

    Ctrl-C reaches every process of the terminal's group, so each run hears it, saves its snapshot and stops. The
    sweep process must leave them to it: Python's KeyboardInterrupt would make joblib abort its pool and kill the
    runs while they save (seen: a run killed with its new snapshot half written, which resumes from the one before).
    On SIGINT it therefore ends at once, as it does on SIGTERM, and the runs finish their snapshots on their own."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if str(OmegaConf.select(config, "hydra.launcher._target_", default="")).endswith("JoblibLauncher"):
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.environ[SWEEP_PID] = str(os.getpid())  # the workers inherit it: see _stop


SWEEP_PID = "PBRL_JOBLIB_SWEEP_PID"


class RunStopped(CompactHydraException):
    """A run of a local joblib sweep ended early (a signal, bad settings). Its worker hands this to hydra, which
    reports it in one line once the other runs have ended: a SystemExit would make joblib kill them."""


def _stop(message: str, code: int) -> None:
    """Print why the run stopped and end it: exit ``code``, or in a joblib worker process raise RunStopped."""
    print(message, file=sys.stderr, flush=True)
    if os.environ.get(SWEEP_PID, str(os.getpid())) != str(os.getpid()):
        raise RunStopped(message)
    raise SystemExit(code)


CLUSTER_LAUNCHERS = ("SlurmLauncher", "RayLauncher")  # hydra/launcher=slurm, ray: wandb offline unless told


def sweep_wandb(wandb: dict, sweep: str, run_name: str, launcher: str, overrides: list[str]) -> None:
    """A sweep's wandb settings: one group (the sweep folder's name), the run's overrides as tags, and on a
    cluster launcher ``offline`` unless the command line sets ``logger.wandb.mode`` (``wandb sync`` uploads)."""
    wandb["group"] = wandb.get("group") or sweep
    wandb["tags"] = wandb.get("tags") or [t for t in run_name.split(",") if t][:20]
    told = any(o.lstrip("+~").startswith(("logger.wandb.mode=", "logger=")) for o in overrides)
    if launcher.endswith(CLUSTER_LAUNCHERS) and not told:
        wandb["mode"] = "offline"


def run(cfg: DictConfig) -> dict:
    """Train one run in hydra's output directory, recorded in its run.json, and return its summary."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from pbrl.lifecycle import RunRecord
    from pbrl.workspace import Workspace

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    with RunRecord(run_dir, list(hc.overrides.task)) as record:
        plain = OmegaConf.to_container(cfg, resolve=True)  # the Workspace writes it to config.yaml
        if plain["threads"] == "auto":  # a cluster job's torch threads follow its CPUs per task
            plain["threads"] = _launcher_cpus() or "auto"
        if hc.mode == RunMode.MULTIRUN:
            sweep_wandb(plain["logger"]["wandb"], Path(hc.sweep.dir).name, hc.job.override_dirname,
                        str(OmegaConf.select(hc, "launcher._target_", default="")), list(hc.overrides.task))
        workspace = Workspace(plain, run_dir, parallel_jobs=_parallel_jobs(), record=record)
        record.update(device=str(workspace.device), threads=workspace.threads, precision=workspace.precision)
        return workspace.train()


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's INFO line about its accelerator
    try:
        run(cfg)
    except ConfigError as exc:
        _stop(f"pbrl-train: error: {exc}", 2)
    except Preempted as exc:
        _stop(f"pbrl-train: {exc}; rerun the same command to resume", 128 + exc.signum)


def main() -> None:
    """Console-script entry point."""
    configure_mujoco_gl()  # before anything imports mujoco
    _hydra_main()


if __name__ == "__main__":
    main()
