"""The human-teacher pipeline under load: a simulated person labels over HTTP while the agent trains.

    python experiments/bench_viewer.py                 # Hopper-v5, async teacher, a label every 2 s

Runs ``teacher=human teacher.mode=async`` on Hopper-v5 in this process (the viewer in a thread,
the clip renderer in its own process, as in a real session). A labeller thread answers through the
real HTTP API every ``--every`` seconds, and a sampler records the ready queue (queries rendered
and not yet labelled) twice a second. Prints and saves a table: label acknowledgement latency
(POST /api/label until the 200, which comes after the commit) p50/p99, the ready queue's depth, how
often the labeller found nothing to label, and the training speed against the same run with the
scripted oracle (``--no-baseline`` skips that run). The new table goes on top of
experiments/results/bench_viewer.md; earlier ones stay below it. ``--screenshot outputs/viewer.png`` also saves
what a person sees halfway through the session (headless system Chromium through Playwright).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
import urllib.request
from datetime import date

import numpy as np

from common import RESULTS, ROOT, RUNS, compose, machine

sys.path.insert(0, str(ROOT / "tests"))

# teacher=human raises feedback.segment to 1 s of Hopper (125 steps, teacher.min_clip_s) and renders 640x480
# clips (teacher.clip): the defaults a person gets; the scripted baseline uses the same segments
OVERRIDES = ["env=hopper", "env.terminate=false", "seed_steps=1000", "pretrain.steps=2000",
             "feedback.num_interact=1000", "feedback.mb_size=10", "feedback.segment=125", "threads=1",
             "progress=false", "eval.every=0", "eval.episodes=2", "eval.video=none", "snapshot.every=0",
             "logger.tensorboard=false"]


def _config(steps: int, teacher: list[str]) -> dict:
    cfg, _ = compose(OVERRIDES + [f"steps={steps}", f"feedback.max_feedback={steps // 50}"] + teacher)
    if cfg["teacher"]["name"] == "human":  # what this benchmark claims to time: a person's default clips
        clip = cfg["teacher"]["clip"]
        assert (clip["width"], clip["height"], cfg["teacher"]["min_clip_s"]) == (640, 480, 1.0), clip
    assert cfg["feedback"]["segment"] == 125
    return cfg


def why_empty(store) -> str:
    """Why the labeller found nothing: "unasked" (the trainer has not asked), "round start" (a round was just
    asked and its first pair is still rendering) or "behind" (the renderer fell behind the person)."""
    rows = store.db.execute("SELECT round, status FROM queries").fetchall()
    rendering = [r["round"] for r in rows if r["status"] == "rendering"]
    if not rendering:
        return "unasked"
    latest = max(r["round"] for r in rows)
    started = any(r["round"] == latest and r["status"] != "rendering" for r in rows)
    return "round start" if not started and all(r == latest for r in rendering) else "behind"


def labeller(url_file, every: float, stop: threading.Event, latencies: list, empty: list) -> None:
    from pbrl.human.store import LabelStore

    while not url_file.exists():
        time.sleep(0.1)
    store = LabelStore(url_file.parent / "labels.sqlite")
    base, token = url_file.read_text().strip().split("/?token=")
    headers = {"X-PBRL-Token": token, "Content-Type": "application/json"}
    rng = np.random.default_rng(0)
    while not stop.wait(every):
        req = urllib.request.Request(f"{base}/api/next?annotator=bench", headers=headers)
        q = json.load(urllib.request.urlopen(req))["query"]
        if q is None:  # nothing to show: still rendering, or nothing asked yet (the trainer's pace)
            empty.append((time.time(), why_empty(store)))
            continue
        answer = ["left", "right", "equal"][int(rng.integers(3))]
        body = json.dumps({"query_id": q["id"], "annotator": "bench", "answer": answer, "order": q["order"],
                           "repeat": q["repeat"], "response_ms": int(every * 1000)}).encode()
        t0 = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(f"{base}/api/label", data=body, headers=headers)) as r:
            assert r.status == 200
        latencies.append(time.perf_counter() - t0)
    store.close()


def first_pair_latency(store_path) -> np.ndarray:
    """Seconds from each round's queries being asked to its first pair being ready to show."""
    from pbrl.human.store import LabelStore

    store = LabelStore(store_path)
    rows = store.db.execute("SELECT round, MIN(created) AS asked, MIN(rendered) AS ready FROM queries "
                            "WHERE rendered IS NOT NULL GROUP BY round").fetchall()
    store.close()
    return np.asarray([r["ready"] - r["asked"] for r in rows])


def sampler(store_path, stop: threading.Event, depth: list) -> None:
    from pbrl.human.store import LabelStore

    while not store_path.exists():
        time.sleep(0.1)
    store = LabelStore(store_path)
    while not stop.wait(0.5):
        c = store.counts()
        depth.append((time.time(), c["ready"], c["rendering"], c["labels"]))
    store.close()


def screenshot(url_file, path, after_s: float, stop: threading.Event) -> None:
    """Open the viewer in headless Chromium ``after_s`` seconds into the session and save a small PNG."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from pbrl.human.browser import launch

    if stop.wait(after_s):
        return
    url = url_file.read_text().strip()
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1100, "height": 600})
        page.add_init_script("localStorage.setItem('pbrl.annotator', 'alice')")
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('#stage video.clip').length >= 2 && "
                               "[...document.querySelectorAll('#stage video.clip')].every(v => v.currentTime > 0.3)",
                               timeout=30000)
        page.screenshot(path=str(path))
        browser.close()
    Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)  # a small file for the README
    print(f"saved {path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between labels")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--screenshot", help="save the viewer as a person sees it halfway through, to this PNG")
    args = parser.parse_args()
    from pbrl.workspace import Workspace

    out_dir = RUNS / "bench_viewer"
    shutil.rmtree(out_dir, ignore_errors=True)
    rows = []
    runs = [("human (async), a label every %.0f s" % args.every, ["teacher=human", "teacher.mode=async"])]
    if not args.no_baseline:
        runs.append(("scripted oracle", ["teacher=oracle"]))
    for name, teacher in runs:
        run_dir = out_dir / teacher[0].split("=")[1]
        stop, latencies, empty, depth = threading.Event(), [], [], []
        threads = []
        if "teacher=human" in teacher:
            threads = [threading.Thread(target=labeller, args=(run_dir / "human" / "viewer_url.txt", args.every, stop,
                                                               latencies, empty), daemon=True),
                       threading.Thread(target=sampler, args=(run_dir / "human" / "labels.sqlite", stop, depth),
                                        daemon=True)]
            if args.screenshot:
                threads.append(threading.Thread(target=screenshot, args=(run_dir / "human" / "viewer_url.txt",
                                                                         ROOT / args.screenshot, 60.0, stop),
                                                daemon=True))
            for t in threads:
                t.start()
        started = time.perf_counter()
        summary = Workspace(_config(args.steps, teacher), run_dir).train()
        wall = time.perf_counter() - started
        stop.set()
        for t in threads:
            t.join(5)
        row = {"run": name, "steps_per_s": args.steps / wall, "labels": summary.get("labels")}
        if latencies:
            ms = np.asarray(latencies) * 1000
            # the queue once labelling can start: from the first ready query on
            d = [r for _, r, _, _ in depth]
            first = next((i for i, r in enumerate(d) if r > 0), len(d))
            d = np.asarray(d[first:] or [0])
            row.update(ack_p50=np.percentile(ms, 50), ack_p99=np.percentile(ms, 99), acks=len(ms),
                       depth_min=d.min(), depth_median=np.median(d), depth_max=d.max(), tries=len(ms) + len(empty),
                       behind=sum(1 for _, why in empty if why == "behind"),
                       round_start=sum(1 for _, why in empty if why == "round start"),
                       empty_unasked=sum(1 for _, why in empty if why == "unasked"))
            first = first_pair_latency(run_dir / "human" / "labels.sqlite")
            row.update(first_p50=np.median(first), first_max=first.max())
        rows.append(row)
        print(row, flush=True)
    human = rows[0]
    lines = [f"# Human teacher under load ({date.today()})", "",
             f"Command: `python experiments/bench_viewer.py --steps {args.steps} --every {args.every:g}` "
             "(Hopper-v5, termination off, 1 torch thread, 10 queries per 1000 steps, 1 s segments (125 steps) "
             "rendered as 640x480 mp4; the viewer, the clip renderer and a simulated labeller answering over HTTP "
             f"every {args.every:g} s run beside the training, on {machine()}; load average at the end "
             f"{__import__('os').getloadavg()[0]:.1f}).", "",
             "| run | env steps/s | labels | label ack p50 | ack p99 | ready queue min / median / max | "
             "nothing ready: the renderer behind the person | nothing ready: a new round's first pair rendering "
             "| nothing ready: nothing asked yet | a round's first pair ready after (median / max) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "ack_p50" in r:
            lines.append(f"| {r['run']} | {r['steps_per_s']:.0f} | {r['acks']} | {r['ack_p50']:.1f} ms | "
                         f"{r['ack_p99']:.1f} ms | {r['depth_min']:.0f} / {r['depth_median']:.0f} / "
                         f"{r['depth_max']:.0f} | {r['behind']} of {r['tries']} tries | "
                         f"{r['round_start']} of {r['tries']} tries | {r['empty_unasked']} of {r['tries']} tries | "
                         f"{r['first_p50']:.1f} s / {r['first_max']:.1f} s |")
        else:
            lines.append(f"| {r['run']} | {r['steps_per_s']:.0f} | {r['labels']} | | | | | | | |")
    lines += ["", "The ready queue is counted from the first rendered query on. A try finds nothing when the "
              "person is faster than the trainer asks (\"nothing asked yet\": here 10 queries per 1000 env steps, "
              "counted from the start, so it includes the wait for the first round), when a round has just been "
              "asked and its first pair's two clips are being rendered (the person was waiting for the agent "
              "anyway: this adds the first pair's render time to that wait), or when the renderer has fallen "
              "behind the person mid-round (\"the renderer behind the person\"), the wait this benchmark is "
              "about."]
    if len(rows) > 1:
        lines += ["", f"Training speed with the person's pipeline running: {human['steps_per_s'] / rows[1]['steps_per_s']:.0%} "
                  "of the same run with the scripted oracle."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = RESULTS / "bench_viewer.md"
    earlier = out.read_text() if out.exists() else ""  # earlier measurements stay below the new one
    out.write_text(text + ("\n" + earlier if earlier else ""))


if __name__ == "__main__":
    main()
