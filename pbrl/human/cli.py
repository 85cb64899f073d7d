"""``pbrl-label``: the labelling viewer, standalone.

    pbrl-label RUN_DIR                 # serve the viewer over a run's label store
    pbrl-label --demo                  # a throwaway run: random-policy Hopper, rendered queries
    pbrl-label RUN_DIR --export OUT    # write all labels with their segments to the folder OUT
    pbrl-label RUN_DIR --import EXPORT # copy an export's labels into RUN_DIR's store (seeds a new run)

A training run with ``teacher=human`` serves the viewer itself and prints its URL; ``pbrl-label
RUN_DIR`` is for ``teacher.serve=false``, for a second annotator on another port, or for a run that
has stopped. It also renders waiting clips when no live training run does.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

DEMO_INSTRUCTION = "Which hopper moves forward more smoothly?"


def make_demo(run_dir: str | Path, queries: int = 12, k: int = 2, segment: int = 125, seed: int = 0) -> Path:
    """A run directory with a label store of ``queries`` queries of random-policy Hopper-v5 segments.

    ``segment=125`` steps are 1 s of Hopper (dt 0.008), the clip length a person labels in a run.
    """
    from pbrl.envs import get_sim_state, make_env
    from pbrl.human.store import LabelStore

    run_dir = Path(run_dir)
    env = make_env("Hopper-v5", {"terminate_when_unhealthy": False})
    rng = np.random.default_rng(seed)
    obs_l, act_l, state_l = [], [], []
    obs, _ = env.reset(seed=seed)
    for _ in range(queries * k * segment):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        state_l.append(get_sim_state(env))
        obs_l.append(obs), act_l.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    shape = (queries, k, segment)
    store = LabelStore.for_run(run_dir)
    for key, value in (("instruction", DEMO_INSTRUCTION), ("k", k), ("budget", queries), ("env_id", "Hopper-v5"),
                       ("mode", "demo")):
        store.set_meta(key, value)
    store.add_queries(np.asarray(obs_l, np.float32).reshape(*shape, -1), np.asarray(act_l).reshape(*shape, -1),
                      np.asarray(state_l).reshape(*shape, -1), np.arange(np.prod(shape)).reshape(shape),
                      round_=0, env_step=0, selection="uniform")
    store.close()
    return run_dir


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.exists():
        return {}
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pbrl-label", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a run directory (holding human/labels.sqlite)")
    parser.add_argument("--demo", action="store_true", help="create a throwaway demo run under outputs/label-demo/")
    parser.add_argument("--queries", type=int, default=12, help="--demo: queries to make (default 12)")
    parser.add_argument("--k", type=int, default=2, help="--demo: clips per query; 3..8 for rankings (default 2)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--render", choices=("auto", "yes", "no"), default="auto",
                        help="render waiting clips here: auto = unless a live training run does (default)")
    parser.add_argument("--repeat-fraction", type=float, default=None,
                        help="share of repeats with sides swapped (default: the run's teacher.repeat_fraction, else 0.1)")
    parser.add_argument("--timeout", type=float, default=None, help="stop serving after this many seconds")
    parser.add_argument("--export", metavar="OUT", help="write RUN_DIR's labels and segments to the folder OUT and exit")
    parser.add_argument("--import", dest="import_", metavar="EXPORT",
                        help="copy the labels of the export EXPORT into RUN_DIR's store and exit")
    args = parser.parse_args(argv)

    from pbrl.human.store import STORE_NAME, LabelStore, StoreError

    if args.demo:
        if args.run_dir:
            parser.error("--demo makes its own run directory; give no RUN_DIR")
        if not 2 <= args.k <= 8 or not 1 <= args.queries <= 500:
            parser.error("--k must be 2..8 and --queries 1..500")
        run_dir = Path("outputs") / "label-demo" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        print(f"pbrl-label: demo run in {run_dir}: {args.queries} queries of random-policy Hopper-v5", flush=True)
        make_demo(run_dir, args.queries, args.k)
    elif not args.run_dir:
        parser.error("give a RUN_DIR, or --demo")
    else:
        run_dir = Path(args.run_dir)
    store_path = run_dir / "human" / STORE_NAME
    if args.import_:
        from pbrl.human.exchange import import_store

        store = LabelStore(store_path)
        try:
            done = import_store(args.import_, store)
        except StoreError as exc:
            print(f"pbrl-label: {exc}", file=sys.stderr)
            return 2
        print(f"pbrl-label: imported {done['labels']} labels on {done['queries']} queries into {store_path}")
        return 0
    if not store_path.exists():
        print(f"pbrl-label: {run_dir} has no label store ({store_path}); start a run with teacher=human, "
              "or try pbrl-label --demo", file=sys.stderr)
        return 2
    if args.export:
        from pbrl.human.exchange import export_store

        done = export_store(LabelStore(store_path), args.export)
        print(f"pbrl-label: exported {done['labels']} labels on {done['queries']} queries to {args.export}")
        return 0
    return serve(run_dir, args)


def serve(run_dir: Path, args: argparse.Namespace) -> int:
    from pbrl.human.server import ViewerConfig, ViewerServer, make_app
    from pbrl.human.store import LabelStore
    from pbrl.human.worker import ClipSettings, RenderWorker

    store = LabelStore.for_run(run_dir)
    meta = store.meta()
    teacher = _run_config(run_dir).get("teacher", {})
    live = meta.get("trainer_heartbeat", 0) > time.time() - 30 and not meta.get("done", False)
    worker = None
    if args.render == "yes" or (args.render == "auto" and not live):
        env_id = meta.get("env_id")
        if env_id is None:
            print("pbrl-label: the store names no environment; clips cannot be rendered here", file=sys.stderr)
        else:
            env_kwargs = (_run_config(run_dir).get("env", {}) or {}).get("kwargs")
            worker = RenderWorker(store.path, store.path.parent / "clips", env_id, env_kwargs,
                                  ClipSettings(**(teacher.get("clip") or {}))).start()
    from pbrl.human.instructions import default_instruction

    repeat = args.repeat_fraction if args.repeat_fraction is not None else teacher.get("repeat_fraction", 0.1)
    app = make_app(ViewerConfig(store.path, store.path.parent / "clips",
                                instruction=meta.get("instruction", default_instruction(meta.get("env_id", ""))),
                                repeat_fraction=float(repeat), repeat_gap=int(teacher.get("repeat_gap", 10))))
    server = ViewerServer(app, args.host, args.port)
    counts = store.counts()
    print(f"pbrl-label: {counts['labelled']} labelled, {counts['ready'] + counts['rendering']} waiting"
          + (" (a live training run renders the clips)" if live and worker is None else ""), flush=True)
    print(f"pbrl-label: open {server.url}", flush=True)
    print("pbrl-label: Ctrl-C to stop; every label is saved as you give it", flush=True)
    started = time.time()
    try:
        while args.timeout is None or time.time() - started < args.timeout:
            time.sleep(0.5)
            if worker is not None:
                message = worker.check()
                if message:
                    print(f"pbrl-label: {message}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if worker is not None:
            worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
