"""Screenshots of the labelling viewer as a person sees it, at two window sizes, for the README.

    python experiments/viewer_screenshots.py            # docs/viewer-1024.png and docs/viewer-1600.png

Builds a throwaway run (``pbrl-label --demo``'s random-policy Hopper-v5 queries, 1 s clips rendered
at the human teacher's default 640x480), gives a few labels so that the header and the recent
labels show a session under way, opens the viewer in headless Debian chromium at 1024x700 and
1600x1000, and saves each once both clips play. The run lives under runs/ (ignored by git).
"""

from __future__ import annotations

import argparse
import shutil
import time

from common import ROOT, RUNS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs", help="folder for the PNGs, relative to the repository")
    parser.add_argument("--sizes", default="1024x700,1600x1000", help="window sizes, WxH, comma-separated")
    args = parser.parse_args()

    from PIL import Image
    from playwright.sync_api import sync_playwright

    from pbrl.envs.render import configure_mujoco_gl

    configure_mujoco_gl()
    from pbrl.human.browser import launch
    from pbrl.human.cli import make_demo
    from pbrl.human.clips import ClipRenderer
    from pbrl.human.server import ViewerConfig, ViewerServer, make_app
    from pbrl.human.store import LabelStore
    from pbrl.human.worker import render_pending

    run_dir = RUNS / "viewer_screenshots"
    shutil.rmtree(run_dir, ignore_errors=True)
    make_demo(run_dir, queries=8)
    store = LabelStore.for_run(run_dir)
    clip_dir = store.path.parent / "clips"
    with ClipRenderer("Hopper-v5", {"terminate_when_unhealthy": False}) as renderer:
        while render_pending(store, renderer, clip_dir, "mp4"):
            pass
    for qid, answer in ((1, "left"), (2, "right"), (3, "equal")):  # a session under way
        store.add_label(qid, "alice", answer, [0, 1], response_ms=2500)
    for key, value in (("budget", 1000), ("trainer_step", 23500), ("total_steps", 150000),
                       ("next_round_step", 25000), ("trainer_heartbeat", time.time() + 3600), ("mode", "async"),
                       ("instruction", "Which hopper is closer to doing a backflip?")):
        store.set_meta(key, value)

    server = ViewerServer(make_app(ViewerConfig(store.path, clip_dir)))
    try:
        with sync_playwright() as p:
            browser = launch(p)
            for size in args.sizes.split(","):
                width, height = (int(v) for v in size.split("x"))
                page = browser.new_page(viewport={"width": width, "height": height})
                page.add_init_script("localStorage.setItem('pbrl.annotator', 'alice')")
                page.goto(server.url)
                page.wait_for_function("pbrl.state().playing && pbrl.state().times.every(t => t > 0.5)",
                                       timeout=30000)
                page.wait_for_function("pbrl.state().server !== null")
                path = ROOT / args.out / f"viewer-{width}.png"
                page.screenshot(path=str(path))
                layout = page.evaluate("""() => {
                  const r = (s) => document.querySelector(s).getBoundingClientRect();
                  const tiles = [...document.querySelectorAll('#stage .tile')].map(t => t.getBoundingClientRect());
                  return {header: r('header.top').height, controls: r('#controls').height,
                          answers: r('#answers').height, footer: r('footer.bottom').bottom,
                          tile: [tiles[0].width, tiles[0].height],
                          clips: tiles.reduce((a, t) => a + t.width * t.height, 0) / (innerWidth * innerHeight)};
                }""")
                page.close()
                Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)  # small files for git
                print(f"{path.relative_to(ROOT)}: header {layout['header']:.0f} px, controls {layout['controls']:.0f} "
                      f"px, answers {layout['answers']:.0f} px, page bottom {layout['footer']:.0f} of {height} px, "
                      f"each clip {layout['tile'][0]:.0f}x{layout['tile'][1]:.0f} px, clips cover "
                      f"{100 * layout['clips']:.0f} % of the window", flush=True)
            browser.close()
    finally:
        server.close()


if __name__ == "__main__":
    main()
