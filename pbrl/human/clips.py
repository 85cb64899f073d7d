"""Short video clips of stored trajectory segments, for the human labelling viewer.

Only the segments a query selects are ever shown to a person, so nothing is rendered while the
agent trains: the replay buffer keeps the simulator state of every step, and a clip is made on
demand by restoring those states into an offscreen env and rendering a frame of each. Every k-th
step is rendered so that the clip plays in real time at about 25 fps, and the last frame is held
for a moment so that the loop point is visible when the browser repeats the clip. One env and one
GL context serve every clip: making them costs more than rendering a 50-step segment. A clip is
written under a temporary name and renamed into place, so the viewer, which may serve one clip
while the next is being written, never reads a half-written file.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pbrl.envs import get_sim_state, make_env, set_sim_state
from pbrl.envs.render import FrameRenderer, frame_stride

FORMATS = ("mp4", "webm", "gif")

# ffmpeg codec and output options per format. A keyframe every 10 frames (~0.4 s) keeps seeking
# cheap; +faststart puts the mp4 index first so the browser can start playing before the whole
# file has arrived. One encoder thread: clips are made beside training on a few cores. x264's
# superfast preset encodes a 640x480 Hopper clip in ~0.3 s of CPU (veryfast: ~0.44 s, for files
# a quarter smaller; ultrafast: ~0.24 s, for files 3.5x larger; AMD EPYC, 2026-12-02).
_FFMPEG = {
    "mp4": ("libx264", ["-preset", "superfast", "-crf", "23", "-g", "10", "-movflags", "+faststart", "-f", "mp4"]),
    "webm": ("libvpx-vp9", ["-deadline", "realtime", "-cpu-used", "8", "-crf", "32", "-b:v", "0", "-g", "10",
                            "-f", "webm"]),
}


@dataclass
class ClipInfo:
    """What was written: the clip's path, its frame count (hold frames included), rate and size."""

    path: Path
    frames: int
    fps: float
    duration_s: float
    width: int
    height: int


class ClipRenderer:
    """Renders segments of stored simulator states of ``env_id`` to looping clips.

    ``fmt`` is "mp4" (H.264, plays in every browser), "webm" (VP9) or "gif" (no video codec
    needed). MuJoCo tasks are drawn at ``width`` x ``height`` by a tracking camera; other tasks
    (classic control) come from ``env.render()`` at the env's own size. Use it as a context
    manager, or call ``close()``, to free the env and its GL context.
    """

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None, width: int = 640,
                 height: int = 480, target_fps: float = 25.0, hold_s: float = 0.2, fmt: str = "mp4"):
        if fmt not in FORMATS:
            raise ValueError(f"fmt={fmt!r} is not a clip format; use one of {', '.join(FORMATS)}")
        if target_fps <= 0 or hold_s < 0:
            raise ValueError(f"need target_fps > 0 and hold_s >= 0, got target_fps={target_fps}, hold_s={hold_s}")
        self.fmt = fmt
        # rgb_array serves the env.render() fallback; MuJoCo tasks ignore it (FrameRenderer draws them)
        self.env = make_env(env_id, env_kwargs, render_mode="rgb_array")
        self.env.reset(seed=0)  # classic-control envs have no state to overwrite before their first reset
        self.state_dim = len(get_sim_state(self.env))
        if self.state_dim == 0:
            self.env.close()
            raise ValueError(f"{env_id} exposes no simulator state to restore, so its segments cannot be rendered")
        self.renderer = FrameRenderer(self.env, width, height)
        render_fps = self.env.metadata.get("render_fps")
        self.stride = frame_stride(render_fps, target_fps)
        self.fps = float(render_fps or target_fps) / self.stride  # real time: one frame per `stride` env steps
        self.hold_frames = math.ceil(hold_s * self.fps)

    def frames(self, sim_states: np.ndarray) -> list[np.ndarray]:
        """``[H, W, 3]`` uint8 frames of every ``stride``-th state and the last one, then the hold frames."""
        sim_states = np.asarray(sim_states, dtype=np.float64)  # [T, D]
        if sim_states.ndim != 2 or len(sim_states) == 0 or sim_states.shape[1] != self.state_dim:
            raise ValueError(f"sim_states must have shape [T >= 1, {self.state_dim}], got {sim_states.shape}")
        steps = list(range(0, len(sim_states), self.stride))
        if steps[-1] != len(sim_states) - 1:
            steps.append(len(sim_states) - 1)
        frames = []
        for t in steps:
            set_sim_state(self.env, sim_states[t])
            frames.append(self.renderer.render())
        return frames + [frames[-1]] * self.hold_frames

    def render(self, sim_states: np.ndarray, path: str | Path) -> ClipInfo:
        """Write the clip of ``sim_states`` (``[T, D]``, as get_sim_state returns) to ``path``, atomically."""
        path = Path(path)
        frames = self.frames(sim_states)
        if self.fmt != "gif":  # yuv420p needs even sizes: drop an odd last row or column
            h, w = frames[0].shape[:2]
            frames = [f[: h - h % 2, : w - w % 2] for f in frames]
        path.parent.mkdir(parents=True, exist_ok=True)
        # same folder, so os.replace is an atomic rename; hidden, so folder listings skip it
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            self._write(tmp, frames)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        h, w = frames[0].shape[:2]
        return ClipInfo(path=path, frames=len(frames), fps=self.fps, duration_s=len(frames) / self.fps,
                        width=w, height=h)

    def _write(self, path: Path, frames: list[np.ndarray]) -> None:
        if self.fmt == "gif":
            from PIL import Image

            # GIF delays are whole centiseconds; Pillow merges the identical hold frames into one long frame
            images = [Image.fromarray(f) for f in frames]
            images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                           duration=round(1000 / self.fps), loop=0)
            return
        import imageio_ffmpeg

        codec, options = _FFMPEG[self.fmt]
        h, w = frames[0].shape[:2]
        writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=self.fps, codec=codec, quality=None,
                                             macro_block_size=2, output_params=[*options, "-threads", "1"])
        writer.send(None)  # starts ffmpeg
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()

    def close(self) -> None:
        """Free the GL context and the env."""
        self.renderer.close()
        self.env.close()

    def __enter__(self) -> ClipRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
