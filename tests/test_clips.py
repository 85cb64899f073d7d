"""Tests for ``pbrl/human/clips.py``: segment clips with the right frames, hold, size, and atomic writes."""

from __future__ import annotations

import math

import imageio.v2 as imageio
import numpy as np
import pytest

from pbrl.envs import get_sim_state, make_env
from pbrl.envs.render import configure_mujoco_gl
from pbrl.human.clips import ClipRenderer

needs_gl = pytest.mark.skipif(configure_mujoco_gl() is None,
                              reason="no headless GL for MuJoCo (install libegl1 libgl1 libosmesa6)")


def _segment(env_id: str, steps: int, seed: int = 0) -> np.ndarray:
    """``[steps, D]`` simulator states of a random-action rollout."""
    env = make_env(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    states = []
    for _ in range(steps):
        states.append(get_sim_state(env))
        env.step(env.action_space.sample())
    env.close()
    return np.stack(states)


def _decode(path) -> np.ndarray:
    return np.stack([frame for frame in imageio.get_reader(str(path))])  # list() would ask len(): inf


@needs_gl
@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_hopper_clip_has_the_strided_frames_and_the_hold(tmp_path, fmt):
    states = _segment("Hopper-v5", 30)
    with ClipRenderer("Hopper-v5", fmt=fmt) as clips:
        info = clips.render(states, tmp_path / f"clip.{fmt}")
    # Hopper renders at 125 fps; clips aim at 25: every 5th of 30 steps (0, 5, ..., 25) plus the last one (29)
    hold = math.ceil(0.2 * 125 / 5)
    assert clips.stride == 5 and info.fps == pytest.approx(25.0)
    assert info.frames == 6 + 1 + hold and info.duration_s == pytest.approx(info.frames / 25.0)
    assert (info.width, info.height) == (640, 480)  # 480p by default: a person sees these at half a screen
    frames = _decode(info.path)
    assert frames.shape == (info.frames, 480, 640, 3)
    assert [p.name for p in tmp_path.iterdir()] == [f"clip.{fmt}"]  # renamed into place, no temp file left


@needs_gl
def test_hold_frames_repeat_the_last_frame(tmp_path):
    states = _segment("Hopper-v5", 30)
    with ClipRenderer("Hopper-v5", hold_s=0.2) as clips:
        frames = clips.frames(states)
        info = clips.render(states, tmp_path / "clip.mp4")
    hold = clips.hold_frames
    assert hold == 5 and len(frames) == info.frames  # ceil(0.2 s x 25 fps)
    for frame in frames[-hold:]:
        np.testing.assert_array_equal(frame, frames[-hold - 1])
    assert np.abs(frames[-hold - 1].astype(int) - frames[-hold - 2].astype(int)).mean() > 0  # the last step moved
    decoded = _decode(info.path).astype(int)
    assert np.abs(decoded[-hold:] - decoded[-hold - 1]).mean() < 5  # lossy, but still the same picture


@needs_gl
def test_a_failed_write_leaves_neither_the_clip_nor_a_temp_file(tmp_path, monkeypatch):
    states = _segment("Hopper-v5", 9)
    with ClipRenderer("Hopper-v5") as clips:
        old = clips.render(states, tmp_path / "clip.mp4").path.read_bytes()

        def half_write(path, frames):
            path.write_bytes(b"\x00" * 100)
            raise OSError("disk full")

        monkeypatch.setattr(clips, "_write", half_write)
        with pytest.raises(OSError, match="disk full"):
            clips.render(states[:5], tmp_path / "clip.mp4")
        with pytest.raises(OSError, match="disk full"):
            clips.render(states, tmp_path / "other.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    assert (tmp_path / "clip.mp4").read_bytes() == old  # a reader still sees the whole earlier clip


@needs_gl
def test_gif_fallback_is_readable(tmp_path):
    with ClipRenderer("Hopper-v5", fmt="gif") as clips:
        info = clips.render(_segment("Hopper-v5", 9), tmp_path / "clip.gif")
    assert _decode(info.path)[0].shape[:2] == (480, 640)


def test_pendulum_renders_through_env_render(tmp_path):
    states = _segment("Pendulum-v1", 20)
    with ClipRenderer("Pendulum-v1") as clips:  # 30 fps: every step is a frame
        info = clips.render(states, tmp_path / "pendulum.mp4")
    assert clips.stride == 1 and info.frames == 20 + math.ceil(0.2 * 30)
    frames = _decode(info.path)
    assert frames.shape == (info.frames, info.height, info.width, 3) and frames.std() > 1


def test_bad_format_and_bad_states_are_rejected():
    with pytest.raises(ValueError, match="fmt='avi'.*mp4, webm, gif"):
        ClipRenderer("Pendulum-v1", fmt="avi")
    with ClipRenderer("Pendulum-v1") as clips:
        with pytest.raises(ValueError, match=r"shape \[T >= 1, 2\]"):
            clips.frames(np.zeros((5, 3)))
        with pytest.raises(ValueError, match="shape"):
            clips.frames(np.zeros((0, 2)))


@needs_gl
def test_clips_larger_than_the_models_offscreen_buffer_render(tmp_path):
    """Hopper's model asks for a 640x480 offscreen buffer; a 960x720 clip grows it instead of failing."""
    with ClipRenderer("Hopper-v5", width=960, height=720) as clips:
        info = clips.render(_segment("Hopper-v5", 5), tmp_path / "big.mp4")
    assert (info.width, info.height) == (960, 720)
