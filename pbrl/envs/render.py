"""Offscreen rendering: headless GL backend choice, a fast tracking-camera renderer, mp4 writing."""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import numpy as np


def configure_mujoco_gl() -> str | None:
    """Pick MuJoCo's headless GL backend unless the user chose one: EGL, else OSMesa.

    Must run before ``mujoco`` is first imported (it reads MUJOCO_GL at import). Returns the
    backend in force, or None when neither library is installed (then videos are skipped; see
    the README for the Debian packages libegl1, libgl1 and libosmesa6).
    """
    # pygame (classic-control rendering) must not look for a display or a sound card
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    for backend, lib in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(lib):
            os.environ["MUJOCO_GL"] = backend
            if backend == "osmesa":
                os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
            return backend
    return None


FIXED_CAMERA = "topview"  # Meta-World's overhead camera; its corner cameras render upside down


class FrameRenderer:
    """Renders RGB frames of an environment's current state.

    For MuJoCo tasks it drives ``mujoco.Renderer`` directly with a camera that tracks the root body
    (or, in a scene with a camera named ``topview`` such as Meta-World's, that fixed camera) and with
    shadows, reflections, the skybox and multisampling off: under software GL (Mesa's
    llvmpipe, no GPU) a 640x480 Hopper frame then costs ~24 ms of CPU instead of ~70 with
    multisampling and skybox (AMD EPYC, 2026-12-02; experiments/results/bench_clips.md), and
    shadows cost ~5x more again. The sky is black. Other tasks fall back to ``env.render()``,
    which needs the env made with ``render_mode="rgb_array"``.
    """

    def __init__(self, env, width: int = 320, height: int = 240):
        from pbrl.envs.make import mujoco_model_data

        self.env = env
        self._renderer = None
        handles = mujoco_model_data(env)  # gymnasium's, Meta-World's and DeepMind Control's MuJoCo tasks
        if handles is not None:
            import mujoco

            model, self._data = handles
            self._mujoco = mujoco
            # the offscreen buffer is as large as the model asks (often 640 x 480): grow it for larger frames
            model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
            model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
            model.vis.quality.offsamples = 0  # 4x multisampling doubles llvmpipe's cost; at 480p edges stay clean enough
            self._renderer = mujoco.Renderer(model, height, width)
            self._camera = mujoco.MjvCamera()
            fixed = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, FIXED_CAMERA)
            if fixed >= 0:  # a manipulation scene (Meta-World): its overhead camera shows the arm, object and goal
                self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
                self._camera.fixedcamid = fixed
            else:  # locomotion: follow the body
                self._camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
                self._camera.trackbodyid = 1 if model.nbody > 1 else 0
                self._camera.distance = min(float(model.stat.extent) * 0.8, 3.5)  # metres; the bodies are 1-2 m
                self._camera.elevation = -15.0
                self._camera.azimuth = 90.0

    def render(self) -> np.ndarray:
        """One ``[H, W, 3]`` uint8 frame of the current state."""
        if self._renderer is None:
            frame = self.env.render()
            if frame is None:
                raise RuntimeError("env.render() returned None; make the env with render_mode='rgb_array'")
            return np.asarray(frame)
        r = self._renderer
        r.update_scene(self._data, camera=self._camera)
        flags = r.scene.flags
        flags[self._mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[self._mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        flags[self._mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
        return r.render().copy()

    def close(self) -> None:
        """Free the GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def frame_stride(render_fps: float | None, target_fps: float = 30.0) -> int:
    """Render every k-th env step so that a clip plays at about ``target_fps``."""
    if not render_fps:
        return 1
    return max(1, round(render_fps / target_fps))


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: float) -> None:
    """H.264 / yuv420p mp4, which headless Chromium and every browser play (yuv420p needs even sizes)."""
    import imageio.v2 as imageio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(str(path), frames, fps=fps, codec="libx264", pixelformat="yuv420p",
                     macro_block_size=2, quality=7)
