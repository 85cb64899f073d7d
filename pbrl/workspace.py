"""The run: seed steps, then training with evaluation, videos and snapshots; resumes by itself.

A ``Workspace`` owns one run directory. ``train()`` first looks there: a ``summary.json`` that
covers the requested steps means the run is finished (return at once); a ``snapshot.pt`` means
it was interrupted (restore everything and carry on). A resumed run starts a fresh episode; every
other piece of state (networks, optimisers, buffer, RNGs, counters, logged rows) is restored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

import pbrl
from pbrl.agents import make_agent
from pbrl.buffers.replay import ReplayBuffer
from pbrl.common.logger import Logger
from pbrl.common.schedule import Every, Until
from pbrl.common.utils import resolve_threads, rng_state, select_device, set_rng_state, set_seed
from pbrl.envs import get_sim_state, make_env, spec_of
from pbrl.envs.render import FrameRenderer, frame_stride, write_mp4
from pbrl.errors import ConfigError, check_choice, check_int

PRECISIONS = ("fp32", "bf16")
# settings a resumed run may change: how it runs and logs, and how long, not what it learns
RESUMABLE_CHANGES = ("steps", "device", "threads", "progress", "logger", "snapshot")
VIDEO_MODES = ("none", "last", "all")


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
    check_int("snapshot.every", cfg["snapshot"]["every"], minimum=0)
    limit = cfg["env"].get("max_episode_steps")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError("env.max_episode_steps", f"got {limit!r}; allowed: null (the env's own limit) or an integer > 0")


def _flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"tau": 0.005}}`` -> ``{"agent.tau": 0.005}``."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(pbrl.__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class Workspace:
    """One training run in ``run_dir`` configured by ``cfg`` (the composed hydra config as a dict)."""

    def __init__(self, cfg: Mapping[str, Any], run_dir: str | Path, parallel_jobs: int = 1):
        validate(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = select_device(str(cfg["device"]))
        self.threads = resolve_threads(cfg["threads"], parallel_jobs)
        torch.set_num_threads(self.threads)
        self.rng = set_seed(cfg["seed"])

        env_cfg = cfg["env"]
        self.env = make_env(env_cfg["id"], env_cfg.get("kwargs"), env_cfg.get("max_episode_steps"))
        self.eval_env = make_env(env_cfg["id"], env_cfg.get("kwargs"), env_cfg.get("max_episode_steps"),
                                 render_mode="rgb_array" if cfg["eval"]["video"] != "none" else None)
        self.spec = spec_of(self.env, env_cfg["id"])
        if self.spec.max_episode_steps is None:
            raise ConfigError("env.max_episode_steps", f"{env_cfg['id']} registers no time limit; set one, "
                                                       "e.g. env.max_episode_steps=1000")
        self.agent = make_agent(cfg["agent"], self.spec.obs_dim, self.spec.action_dim, self.device, cfg["precision"])
        capacity = min(int(cfg["buffer_size"]), int(cfg["steps"]))
        self.buffer = ReplayBuffer(capacity, self.spec.obs_dim, self.spec.action_dim, self.spec.sim_state_dim,
                                   self.device)

        self.step = 0  # environment steps taken
        self.episode = 0  # training episodes started
        self.wall_time = 0.0  # seconds spent in train(), summed over resumes
        self.train_time = 0.0  # the same without evaluation
        self._obs: np.ndarray | None = None  # None: the next step starts a new episode
        self._episode_return, self._episode_length = 0.0, 0
        self._clock_start, self._eval_time = time.perf_counter(), 0.0  # restarted by train()
        self._renderer: FrameRenderer | None = None
        self._video_failed = False

    # ----------------------------------------------------------------------------------- paths
    @property
    def snapshot_path(self) -> Path:
        return self.run_dir / "snapshot.pt"

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "summary.json"

    def finished(self) -> dict | None:
        """The summary of this run directory if it already covers the requested steps."""
        if not self.summary_path.exists():
            return None
        summary = json.loads(self.summary_path.read_text())
        if summary.get("env_steps", 0) >= self.cfg["steps"]:
            return summary
        if not self.snapshot_path.exists():
            raise ConfigError("steps", f"{self.run_dir} holds a run finished at {summary.get('env_steps')} steps "
                                       f"and no snapshot to extend it to {self.cfg['steps']}; use a new run directory")
        return None

    # ------------------------------------------------------------------------------- training
    def train(self) -> dict:
        """Run (or resume, or skip if finished) the whole training; return the summary."""
        done = self.finished()
        if done is not None:
            print(f"pbrl: {self.run_dir} already finished ({done['env_steps']} steps); nothing to do", flush=True)
            return done
        snapshot = torch.load(self.snapshot_path, weights_only=False) if self.snapshot_path.exists() else None
        self.logger = Logger(self.run_dir, self.cfg, tensorboard=self.cfg["logger"]["tensorboard"],
                             wandb=self.cfg["logger"]["wandb"], resume_step=snapshot["step"] if snapshot else 0)
        if snapshot is not None:
            self.load_snapshot(snapshot)
            print(f"pbrl: resumed {self.run_dir} at step {self.step}", flush=True)

        cfg = self.cfg
        steps = cfg["steps"]
        seeding = Until(cfg["seed_steps"])
        eval_now = Every(cfg["eval"]["every"])
        snapshot_now = Every(cfg["snapshot"]["every"])
        pbar = self._progress_bar()
        self._clock_start, self._eval_time = time.perf_counter(), 0.0
        self._tick = (self._clock_start, self.step)  # (time, step) of the last metrics row

        while self.step < steps:
            episode_return = self._collect_step(random_action=seeding(self.step))
            if episode_return is not None:
                pbar.set_postfix_str(f"return {episode_return:.1f}", refresh=False)
            if not seeding(self.step):
                for _ in range(self.agent.cfg.updates_per_step):
                    self.agent.update(self.buffer.sample(self.agent.cfg.batch_size))
            if eval_now(self.step) or self.step == steps:
                row = self._evaluate_and_log(final=self.step == steps)
                pbar.set_postfix_str(f"eval {row['eval_return_mean']:.1f}", refresh=False)
            if snapshot_now(self.step) and self.step < steps:
                self.save_snapshot()
            pbar.update(1)
        pbar.close()
        self._accumulate_time()
        summary = self._write_summary()
        torch.save(self.agent.state_dict(), self.run_dir / "agent.pt")
        if self.snapshot_path.exists() and not cfg["snapshot"]["keep"]:
            self.snapshot_path.unlink()
        self.logger.close()
        return summary

    def _collect_step(self, random_action: bool) -> float | None:
        """One environment step into the buffer; returns the episode's return when the step ended it."""
        if self._obs is None:
            self._obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
            self._episode_return, self._episode_length = 0.0, 0
        obs = self._obs
        sim_state = get_sim_state(self.env) if self.spec.sim_state_dim else None
        if random_action:
            action = self.rng.uniform(-1.0, 1.0, self.spec.action_dim).astype(np.float32)
        else:
            action = self.agent.act(obs)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.buffer.add(obs, action, reward, terminated, truncated, next_obs, self.episode, self._episode_length,
                        sim_state)
        self._episode_return += float(reward)
        self._episode_length += 1
        self.step += 1
        self._obs = next_obs
        if not (terminated or truncated):
            return None
        self.logger.log_episode({"env_step": self.step, "episode": self.episode, "return": self._episode_return,
                                 "length": self._episode_length})
        self.episode += 1
        self._obs = None
        return self._episode_return

    def _evaluate_and_log(self, final: bool) -> dict:
        """Evaluate, then write one metrics row; steps/s there counts training time since the last row."""
        started = time.perf_counter()
        last_time, last_step = self._tick
        row = self.evaluate(final=final)
        row["steps_per_s"] = (self.step - last_step) / max(started - last_time, 1e-9)
        now = time.perf_counter()
        self._eval_time += now - started
        row["wall_time_s"] = self.wall_time + now - self._clock_start
        row.update(self._train_stats())
        self.logger.log_eval(row)
        self._tick = (time.perf_counter(), self.step)
        return row

    def _accumulate_time(self) -> None:
        """Move the time since the clock last started into the run's totals (kept in snapshots)."""
        now = time.perf_counter()
        self.wall_time += now - self._clock_start
        self.train_time += now - self._clock_start - self._eval_time
        self._clock_start, self._eval_time = now, 0.0

    def _progress_bar(self):
        from tqdm import tqdm

        interactive = sys.stderr.isatty()
        return tqdm(total=self.cfg["steps"], initial=self.step, unit="step", dynamic_ncols=True,
                    mininterval=0.5 if interactive else 30.0, disable=not self.cfg["progress"],
                    desc=f"{self.spec.env_id} seed {self.cfg['seed']}")

    def _train_stats(self) -> dict:
        stats = {f"train_{k}": v for k, v in self.agent.metrics().items()} if self.agent.num_updates else {}
        recent = [r["return"] for r in self.logger.episode_rows[-10:]]
        if recent:
            stats["train_return_last10"] = float(np.mean(recent))
        stats["episodes"] = self.episode
        return stats

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self, final: bool = False) -> dict:
        """Deterministic-policy return over ``eval.episodes`` episodes with fixed start seeds."""
        mode = self.cfg["eval"]["video"]
        record = mode == "all" or (mode == "last" and final)
        returns = []
        for i in range(self.cfg["eval"]["episodes"]):
            frames = [] if (record and i == 0) else None
            returns.append(self._eval_episode(seed=self.cfg["seed"] + 1_000_000 + i, frames=frames))
            if frames:
                self._save_video(frames)
        return {"env_step": self.step, "eval_return_mean": float(np.mean(returns)),
                "eval_return_std": float(np.std(returns))}

    def _eval_episode(self, seed: int, frames: list | None) -> float:
        obs, _ = self.eval_env.reset(seed=seed)
        stride = frame_stride(self.eval_env.metadata.get("render_fps"))
        total, t, done = 0.0, 0, False
        while not done:
            if frames is not None and t % stride == 0:
                self._grab_frame(frames)
            obs, reward, terminated, truncated, _ = self.eval_env.step(self.agent.act(obs, deterministic=True))
            total += float(reward)
            t += 1
            done = terminated or truncated
        if frames is not None:
            self._grab_frame(frames)
        return total

    def _grab_frame(self, frames: list) -> None:
        if self._video_failed:
            return
        try:
            if self._renderer is None:
                self._renderer = FrameRenderer(self.eval_env)
            frames.append(self._renderer.render())
        except Exception as exc:  # rendering is optional: a missing GL library must not end a run
            self._video_failed = True
            frames.clear()
            print(f"pbrl: warning: video disabled, rendering failed ({type(exc).__name__}: {exc}); "
                  "install libegl1 libgl1 libosmesa6 or set MUJOCO_GL", file=sys.stderr, flush=True)

    def _save_video(self, frames: list) -> None:
        fps = (self.eval_env.metadata.get("render_fps") or 30) / frame_stride(self.eval_env.metadata.get("render_fps"))
        try:
            write_mp4(self.run_dir / "videos" / f"eval_{self.step:08d}.mp4", frames, fps)
        except Exception as exc:
            print(f"pbrl: warning: could not write video ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)

    # ---------------------------------------------------------------------- snapshot / summary
    def save_snapshot(self) -> None:
        """Write everything needed to resume, atomically (a kill mid-write leaves the old snapshot)."""
        self._accumulate_time()
        state = {"config": dict(self.cfg), "step": self.step, "episode": self.episode,
                 "mid_episode": self._obs is not None,
                 "wall_time": self.wall_time,
                 "train_time": self.train_time, "agent": self.agent.state_dict(), "buffer": self.buffer.state_dict(),
                 "rng": rng_state(self.rng), "logger": self.logger.state_dict()}
        tmp = self.snapshot_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.snapshot_path)

    def load_snapshot(self, state: dict | None = None) -> None:
        """Restore the state save_snapshot wrote (read from disk unless given); the next step starts a new episode."""
        if state is None:
            state = torch.load(self.snapshot_path, weights_only=False)
        old, new = _flatten(state["config"]), _flatten(self.cfg)
        changed = sorted(k for k in set(old) | set(new)
                         if k.split(".")[0] not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
        if changed:
            key = changed[0]
            raise ConfigError(key, f"{self.run_dir} holds a snapshot of a run with {key}={old.get(key)!r}; rerun "
                                   "with the same settings or use a new run directory")
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        set_rng_state(state["rng"], self.rng)
        self.logger.load_state_dict(state["logger"])
        # an episode cut off by the interruption keeps its id; the fresh episode gets the next one
        self.step, self.episode = state["step"], state["episode"] + int(state["mid_episode"])
        self.wall_time, self.train_time = state["wall_time"], state["train_time"]
        self._obs = None

    def _write_summary(self) -> dict:
        import gymnasium
        import mujoco

        evals = [r["eval_return_mean"] for r in self.logger.eval_rows]
        summary = {
            "env_id": self.spec.env_id, "seed": self.cfg["seed"], "env_steps": self.step,
            "final_eval_return": evals[-1] if evals else None, "best_eval_return": max(evals) if evals else None,
            "final_eval_return_std": self.logger.eval_rows[-1]["eval_return_std"] if evals else None,
            "wall_time_s": self.wall_time, "steps_per_s": self.step / max(self.wall_time, 1e-9),
            "train_steps_per_s": self.step / max(self.train_time, 1e-9), "agent": self.agent.cfg.name,
            "precision": self.cfg["precision"], "device": str(self.device), "threads": self.threads,
            "pbrl_version": pbrl.__version__, "git_commit": _git_commit(), "torch_version": torch.__version__,
            "gymnasium_version": gymnasium.__version__, "mujoco_version": mujoco.__version__,
        }
        tmp = self.summary_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, self.summary_path)
        return summary
