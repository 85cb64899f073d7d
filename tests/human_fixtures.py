"""Label stores filled with queries and clips for the viewer tests (no training, no GL needed).

``fake_store`` writes synthetic clips: each frame a flat colour per segment with a bar that moves
one step per frame, so that a browser test can check what is shown and that two clips stay in
step. The queries carry random segments of the right shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pbrl.human.store import LabelStore

COLOURS = [(200, 60, 60), (60, 120, 220), (60, 180, 90), (220, 180, 40), (150, 80, 200)]


def write_synthetic_clip(path: Path, colour: tuple[int, int, int], frames: int = 45, fps: float = 30.0,
                         size: tuple[int, int] = (160, 128)) -> None:
    import imageio.v2 as imageio

    w, h = size
    out = []
    for f in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = colour
        x = int(f * (w - 8) / max(frames - 1, 1))
        img[h // 2 - 10:h // 2 + 10, x:x + 8] = 255
        out.append(img)
    imageio.mimwrite(str(path), out, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2,
                     output_params=["-g", "10", "-movflags", "+faststart"])


def fake_store(run_dir: Path, n: int = 6, k: int = 2, frames: int = 45, fps: float = 30.0, seed: int = 0,
               instruction: str = "Which clip shows the better behaviour?", render: bool = True) -> LabelStore:
    """A store at ``run_dir/human/labels.sqlite`` with ``n`` queries of ``k`` segments, clips in ``run_dir/human/clips``."""
    rng = np.random.default_rng(seed)
    t, o, a, d = 10, 11, 3, 12
    store = LabelStore.for_run(run_dir)
    store.set_meta("instruction", instruction)
    store.set_meta("k", k)
    store.set_meta("budget", n)
    ids = store.add_queries(rng.normal(size=(n, k, t, o)).astype(np.float32),
                            rng.normal(size=(n, k, t, a)).astype(np.float32),
                            rng.normal(size=(n, k, t, d)), np.arange(n * k * t).reshape(n, k, t),
                            round_=0, env_step=1000, selection="uniform")
    clip_dir = Path(run_dir) / "human" / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    if render:
        for qid in ids:
            names = []
            for s in range(k):
                name = f"q{qid:06d}_{s}.mp4"
                write_synthetic_clip(clip_dir / name, COLOURS[s % len(COLOURS)], frames, fps)
                names.append(name)
            store.mark_rendered(qid, names, fps, frames)
    return store
