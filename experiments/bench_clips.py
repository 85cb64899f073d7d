"""How fast pbrl renders the clips a human labeller watches, per video format.

    python experiments/bench_clips.py                      # Hopper-v5, 1 s (125-step) segments at 640x480, 20 clips each
    python experiments/bench_clips.py --segment 50 --width 320 --height 240 --fps 30   # the clips before issue 13
    LP_NUM_THREADS=1 python experiments/bench_clips.py     # llvmpipe on one core, as the render worker runs it

Collects a few random-action Hopper-v5 episodes (``terminate_when_unhealthy=False``, so they are
long enough for the segments) with the simulator state of every step, then renders ``--clips``
random segments per format with one ClipRenderer (the human teacher's defaults: 640x480, ~25 fps,
0.2 s hold, 125 steps = 1 s of Hopper). One clip
per format is rendered first and not timed (GL context, ffmpeg start-up). ms/clip covers restoring
the states, rendering offscreen and encoding; the rendering alone is timed once more without
encoding. CPU ms/clip (this process and its ffmpeg children) does not depend on what else the
machine runs; wall-clock figures do, so the load average is printed with them. "Plays in
Chromium": one clip per format opened in headless Debian chromium (Playwright, ``executable_path``)
as the viewer shows it (``muted``, no controls): its ``videoWidth`` and whether ``currentTime``
advances over half a second ("n/a" without chromium). Writes the table to the top of
experiments/results/bench_clips.md (use --out to change); earlier measurements stay below it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine
from pbrl.envs import get_sim_state, make_env
from pbrl.human.clips import ClipRenderer

RESULTS = Path(__file__).resolve().parent / "results"
ENV_KWARGS = {"terminate_when_unhealthy": False}


def collect_episodes(env_id: str, episodes: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    """``[steps, D]`` simulator states of each random-action episode."""
    env = make_env(env_id, ENV_KWARGS)
    env.action_space.seed(seed)
    out = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        states = []
        for _ in range(steps):
            states.append(get_sim_state(env))
            env.step(env.action_space.sample())
        out.append(np.stack(states))
    env.close()
    return out


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the ffmpeg encoders)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def plays_in_chromium(path: Path) -> str:
    """``videoWidth`` and the clock's advance of ``path`` in headless chromium, or "n/a"."""
    from pbrl.human.browser import chromium_path, launch

    if chromium_path() is None or path.suffix == ".gif":
        return "n/a"
    from playwright.sync_api import sync_playwright

    page_file = path.with_suffix(".html")
    page_file.write_text(f'<video id="v" src="{path.name}" muted autoplay playsinline></video>')
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.goto(page_file.as_uri())
        result = page.evaluate("""async () => {
          const v = document.getElementById('v');
          for (let i = 0; i < 100 && v.readyState < 2; i++) await new Promise(r => setTimeout(r, 50));
          const t0 = v.currentTime; await new Promise(r => setTimeout(r, 500));
          return {width: v.videoWidth, advanced: v.currentTime - t0, error: v.error && v.error.code};
        }""")
        browser.close()
    ok = result["width"] > 0 and result["advanced"] > 0
    return (f"yes (width {result['width']}, +{result['advanced']:.2f} s in 0.5 s)" if ok
            else f"NO (width {result['width']}, error {result['error']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5", help="a MuJoCo gymnasium id")
    parser.add_argument("--clips", type=int, default=20, help="timed clips per format")
    parser.add_argument("--segment", type=int, default=125, help="env steps per clip (125 = 1 s of Hopper)")
    parser.add_argument("--width", type=int, default=640, help="clip width in pixels")
    parser.add_argument("--height", type=int, default=480, help="clip height in pixels")
    parser.add_argument("--fps", type=float, default=25.0, help="target frames per second of simulated time")
    parser.add_argument("--formats", default="mp4,webm", help="comma-separated: mp4, webm, gif")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_clips.md")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    episodes = collect_episodes(args.env, episodes=4, steps=4 * args.segment)
    segments = []  # [clips][segment, D]
    for _ in range(args.clips + 1):
        states = episodes[rng.integers(len(episodes))]
        start = rng.integers(len(states) - args.segment + 1)
        segments.append(states[start:start + args.segment])

    rows, render_ms, render_cpu_ms = [], None, None
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            with ClipRenderer(args.env, ENV_KWARGS, args.width, args.height, args.fps, fmt=fmt) as clips:
                clips.render(segments[-1], Path(tmp) / f"warmup.{fmt}")
                start, cpu = time.perf_counter(), cpu_seconds()
                infos = [clips.render(s, Path(tmp) / f"{fmt}_{i:03d}.{fmt}") for i, s in enumerate(segments[:-1])]
                seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
                if render_ms is None:  # rendering without encoding, the same for every format
                    start, render_cpu = time.perf_counter(), cpu_seconds()
                    for s in segments[:-1]:
                        clips.frames(s)
                    render_ms = 1000 * (time.perf_counter() - start) / args.clips
                    render_cpu_ms = 1000 * (cpu_seconds() - render_cpu) / args.clips
            # what the table claims: the requested size, and a frame rate within a stride of the target
            assert (infos[0].width, infos[0].height) == (args.width, args.height), infos[0]
            assert abs(infos[0].fps - args.fps) <= args.fps / 2, infos[0]
            kb = np.mean([info.path.stat().st_size for info in infos]) / 1024
            rows.append(f"| {fmt} | {args.clips / seconds:.1f} | {1000 * seconds / args.clips:.0f} "
                        f"| {1000 * cpu / args.clips:.0f} | {kb:.0f} "
                        f"| {infos[0].frames} ({infos[0].fps:g} fps, {infos[0].duration_s:.2f} s) "
                        f"| {plays_in_chromium(infos[0].path)} |")

    info, load = infos[0], os.getloadavg()[0]
    text = [f"## {time.strftime('%Y-%m-%d')}: {args.env} clips, {machine()}, "
            f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}, load average {load:.1f}", "",
            f"{args.clips} random {args.segment}-step segments per format, {info.width}x{info.height}, one "
            "ClipRenderer each (setup and one warm-up clip not timed); one ffmpeg thread per clip.", "",
            "| format | clips/s | ms/clip | CPU ms/clip | KB/clip | frames/clip | plays in Chromium |",
            "|---|---|---|---|---|---|---|",
            *rows, "",
            f"Rendering alone (restore state + offscreen frame, no encoding): {render_ms:.0f} ms/clip, "
            f"{render_cpu_ms:.0f} CPU ms/clip.", "",
            f"Command: `python experiments/bench_clips.py --env {args.env} --clips {args.clips} "
            f"--segment {args.segment} --width {args.width} --height {args.height} --fps {args.fps:g} "
            f"--formats {args.formats}` (LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', 'unset')}: "
            "the render worker sets 1, so that rendering takes one core)", ""]
    print("\n".join(text))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    earlier = args.out.read_text() if args.out.exists() else ""
    args.out.write_text("\n".join(text) + ("\n" + earlier if earlier else ""))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
