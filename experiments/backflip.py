"""The backflip demo, scripted: Hopper-v5 learns to flip backward from a scripted teacher's preferences.

    python experiments/backflip.py                  # seeds 0, 1, 2 of experiment=backflip, resumable
    python experiments/backflip.py --report-only    # tables, curves and the GIF from what has finished

One hydra multirun over the seeds (two runs side by side, 1 torch thread each, bf16), then
``pbrl-report --metric final_eval_flip_rate`` (mean, std and IQM over seeds; curves of the flip rate), then a plot
(``flips.png``: the flip metrics against env steps) and a table of the flip metrics every evaluation logs
(``eval.metrics=[flips]``: backward turns per episode, the share of episodes with a whole backward
turn and with a landed flip), read from each run's ``metrics.csv`` and ``summary.json``. The bar:
a whole backward turn in at least 80 % of evaluation episodes, on each seed, with at most 1000
labels. The GIF (``docs/backflip.gif``, < 2 MB) is made from the final evaluation video of the seed
with the most landed flips. Results: experiments/results/backflip/.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from common import RESULTS, ROOT, RUNS, _rel, multirun, report, restore

BAR = 0.8  # share of evaluation episodes with a whole backward turn


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def first_step_at_bar(rows: list[dict[str, str]]) -> int | None:
    """The first evaluation step from which the flip rate stays at or above the bar."""
    step = None
    for row in rows:
        if float(row["eval_flip_rate"]) >= BAR:
            step = step if step is not None else int(row["env_step"])
        else:
            step = None
    return step


def make_gif(video: Path, out: Path, width: int = 240, fps: float = 15.0, max_mb: float = 2.0) -> None:
    """A small looping GIF of ``video``: every k-th frame, downscaled, at most ``max_mb``."""
    import imageio.v2 as imageio
    from PIL import Image

    reader = imageio.get_reader(str(video))
    src_fps = reader.get_meta_data().get("fps", 30.0)
    frames = [Image.fromarray(f) for i, f in enumerate(reader) if i % max(1, round(src_fps / fps)) == 0]
    reader.close()
    for scale in (1.0, 0.8, 0.6):
        w = int(width * scale)
        small = [f.resize((w, int(f.height * w / f.width))).quantize(64) for f in frames]
        small[0].save(out, save_all=True, append_images=small[1:], duration=round(1000 / fps), loop=0, optimize=True)
        if out.stat().st_size <= max_mb * 1024 * 1024:
            return
    raise RuntimeError(f"{out} is larger than {max_mb} MB even at {w} px wide")


def plot_flips(runs: list[Path], path: Path) -> None:
    """Backward turns per episode and the flip / landed-flip shares against env steps, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for run in runs:
        rows = _rows(run / "metrics.csv")
        steps = [int(r["env_step"]) / 1000 for r in rows]
        seed = run.name.rsplit("seed=", 1)[-1].split(",")[0]
        for ax, key in zip(axes, ("eval_rotations_mean", "eval_flip_rate", "eval_landed_rate")):
            ax.plot(steps, [float(r[key]) for r in rows], label=f"seed {seed}")
    for ax, title in zip(axes, ("backward turns per episode", "share of episodes with a whole backward turn",
                                "share of episodes with a landed flip")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("env steps (k)")
        ax.grid(alpha=0.3)
    axes[1].axhline(BAR, color="grey", ls="--", lw=1)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--gif", default="docs/backflip.gif", help="where the GIF goes ('' for none)")
    args = parser.parse_args()
    restore()  # finished runs of earlier sittings (experiments/results/archive) back into runs/
    sweep = RUNS / "backflip"
    if not args.report_only:
        multirun(sweep, ["experiment=backflip", f"seed={args.seeds}", "threads=1"])
    out = RESULTS / "backflip"
    # the aggregate and the curves: the share of eval episodes with a whole backward turn (eval_flip_rate)
    report([sweep], out, "tag", "Backflip (scripted backflip teacher, 1000 labels)", metric="final_eval_flip_rate")

    lines = ["| seed | env steps | labels | whole backward turn (share of eval episodes) | landed flip (share) | "
             "backward turns per episode | first step with the turn share >= 80 % |", "|---|---|---|---|---|---|---|"]
    finished = []
    for run in sorted(sweep.glob("*seed=*")):
        summary_path = run / "summary.json"
        if not summary_path.exists():
            continue
        s = json.loads(summary_path.read_text())
        finished.append((run, s))
        at_bar = first_step_at_bar(_rows(run / "metrics.csv"))
        lines.append(f"| {s['seed']} | {s['env_steps']} | {s['labels']} (asked {s['feedback_asked']}) | "
                     f"{s['final_eval_flip_rate']:.0%} | {s['final_eval_landed_rate']:.0%} | "
                     f"{s['final_eval_rotations_mean']:.2f} | {at_bar if at_bar is not None else 'not reached'} |")
    if finished:
        rates = np.array([s["final_eval_flip_rate"] for _, s in finished])
        landed = np.array([s["final_eval_landed_rate"] for _, s in finished])
        turns = np.array([s["final_eval_rotations_mean"] for _, s in finished])
        lines.append(f"| mean ± std ({len(finished)} seeds) | | | {rates.mean():.0%} ± {rates.std():.0%} | "
                     f"{landed.mean():.0%} ± {landed.std():.0%} | {turns.mean():.2f} ± {turns.std():.2f} | |")
        verdict = ("met" if (rates >= BAR).all() else "not met") if len(finished) >= 3 else \
            f"not decided yet: {len(finished)} of 3 seeds finished"
        lines += ["", f"Bar (a whole backward turn in >= {BAR:.0%} of eval episodes on every seed, >= 3 seeds): "
                  f"{verdict}."]
    seeds = ",".join(str(s["seed"]) for _, s in finished) or args.seeds  # every finished seed, however many calls ran them
    text = "\n".join(["# Backflip: flip metrics at the final evaluation", "",
                      f"Command: `python experiments/backflip.py --seeds {seeds}`; runs in `{_rel(sweep)}`.",
                      "Each evaluation: 10 deterministic 500-step episodes (4 s) without termination.", ""]
                     + lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "flips.md").write_text(text)
    if finished:
        plot_flips([run for run, _ in finished], out / "flips.png")
        print(f"wrote {_rel(out / 'flips.png')}")
    if args.gif and finished:
        run, _ = max(finished, key=lambda rs: (rs[1]["final_eval_landed_mean"], rs[1]["final_eval_rotations_mean"]))
        videos = sorted((run / "videos").glob("eval_*.mp4"))
        if videos:
            make_gif(videos[-1], ROOT / args.gif)
            print(f"wrote {args.gif} from {_rel(videos[-1])} ({(ROOT / args.gif).stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
