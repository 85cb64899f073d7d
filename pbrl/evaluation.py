"""Evaluation: deterministic episodes on the env as registered, with optional video and flip metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from pbrl.envs import make_env
from pbrl.envs.flips import flip_metrics
from pbrl.envs.render import FrameRenderer, frame_stride, write_mp4


class Evaluator:
    """``eval.episodes`` deterministic episodes with fixed start seeds; see ``evaluate``.

    Evaluation always uses the env as registered (plus ``env.kwargs``), so eval returns compare
    with plain SAC's whatever the training env does.
    """

    def __init__(self, cfg: Mapping[str, Any], run_dir: Path, say: Callable[..., None]):
        self.cfg, self.run_dir, self.say = cfg, run_dir, say
        self.env = make_env(cfg["env"]["id"], cfg["env"].get("kwargs"), cfg["env"].get("max_episode_steps"),
                            render_mode="rgb_array" if cfg["eval"]["video"] != "none" else None,
                            action_repeat=cfg["env"].get("action_repeat", 1))
        self._renderer: FrameRenderer | None = None
        self._video_failed = False

    def evaluate(self, agent, step: int, learned_return: Callable[[np.ndarray, np.ndarray], float | None],
                 final: bool = False) -> dict:
        """One metrics row: mean/std return (and the learned reward's return, flips and success, where they exist)."""
        mode = self.cfg["eval"]["video"]
        record = mode == "all" or (mode == "last" and final)
        returns, learned, flips, successes = [], [], [], []
        for i in range(self.cfg["eval"]["episodes"]):
            frames = [] if (record and i == 0) else None
            trajectory: list = []
            qpos: list | None = [] if "flips" in self.cfg["eval"]["metrics"] else None
            returns.append(self._episode(agent, seed=self.cfg["seed"] + 1_000_000 + i, frames=frames,
                                         trajectory=trajectory, qpos=qpos, successes=successes))
            value = learned_return(np.stack([o for o, _ in trajectory]), np.stack([a for _, a in trajectory]))
            if value is not None:
                learned.append(value)
            if qpos:
                flips.append(flip_metrics(np.stack(qpos)))
            if frames:
                self._save_video(frames, step)
        row = {"env_step": step, "eval_return_mean": float(np.mean(returns)), "eval_return_std": float(np.std(returns))}
        if successes:  # Meta-World: the share of episodes whose success flag was raised at some step
            row["eval_success_rate"] = float(np.mean(successes))
        if learned:
            row["eval_learned_return_mean"] = float(np.mean(learned))
        if flips:  # backward turns per episode; share of episodes with a whole turn, and with a landed one
            row["eval_rotations_mean"] = float(np.mean([f["rotations"] for f in flips]))
            row["eval_flip_rate"] = float(np.mean([f["completed"] >= 1 for f in flips]))
            row["eval_landed_rate"] = float(np.mean([f["landed"] >= 1 for f in flips]))
            row["eval_landed_mean"] = float(np.mean([f["landed"] for f in flips]))
        return row

    def _episode(self, agent, seed: int, frames: list | None, trajectory: list, qpos: list | None = None,
                 successes: list | None = None) -> float:
        """One deterministic episode's return; fills ``frames``, ``trajectory`` (obs, action) and ``qpos`` if given,
        and appends whether the env reported ``info["success"]`` during the episode to ``successes`` (if it has one)."""
        env = self.env
        obs, _ = env.reset(seed=seed)
        if qpos is not None:
            qpos.append(env.unwrapped.data.qpos.copy())
        stride = frame_stride(env.metadata.get("render_fps"))
        total, t, done, success = 0.0, 0, False, None
        while not done:
            if frames is not None and t % stride == 0:
                self._grab_frame(frames)
            action = agent.act(obs, deterministic=True)
            trajectory.append((obs, action))
            obs, reward, terminated, truncated, info = env.step(action)
            if "success" in info:
                success = bool(success) or bool(info["success"])
            if qpos is not None:
                qpos.append(env.unwrapped.data.qpos.copy())
            total += float(reward)
            t += 1
            done = terminated or truncated
        if frames is not None:
            self._grab_frame(frames)
        if success is not None and successes is not None:
            successes.append(success)
        return total

    def _grab_frame(self, frames: list) -> None:
        if self._video_failed:
            return
        try:
            if self._renderer is None:
                self._renderer = FrameRenderer(self.env)
            frames.append(self._renderer.render())
        except Exception as exc:  # rendering is optional: a missing GL library must not end a run
            self._video_failed = True
            frames.clear()
            self.say(f"warning: video disabled, rendering failed ({type(exc).__name__}: {exc}); "
                     "install libegl1 libgl1 libosmesa6 or set MUJOCO_GL", error=True)

    def _save_video(self, frames: list, step: int) -> None:
        fps = (self.env.metadata.get("render_fps") or 30) / frame_stride(self.env.metadata.get("render_fps"))
        try:
            write_mp4(self.run_dir / "videos" / f"eval_{step:08d}.mp4", frames, fps)
        except Exception as exc:
            self.say(f"warning: could not write video ({type(exc).__name__}: {exc})", error=True)

    def close(self) -> None:
        """Free the renderer's GL context and the env."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.env.close()
