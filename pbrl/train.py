"""``pbrl-train``: the hydra entry point (``python -m pbrl.train`` is the same).

Bad input ends with ``pbrl-train: error: <field>: <what is allowed>`` and exit status 2, never a
traceback: ConfigError is raised by validation everywhere and caught here once.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from pbrl.envs.render import configure_mujoco_gl
from pbrl.errors import ConfigError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


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


def run(cfg: DictConfig) -> dict:
    """Train one run in hydra's output directory and return its summary."""
    from hydra.core.hydra_config import HydraConfig

    from pbrl.workspace import Workspace

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    plain = OmegaConf.to_container(cfg, resolve=True)  # the Workspace writes it to config.yaml
    return Workspace(plain, run_dir, parallel_jobs=_parallel_jobs()).train()


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's INFO line about its accelerator
    try:
        run(cfg)
    except ConfigError as exc:
        print(f"pbrl-train: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def main() -> None:
    """Console-script entry point."""
    configure_mujoco_gl()  # before anything imports mujoco
    _hydra_main()


if __name__ == "__main__":
    main()
