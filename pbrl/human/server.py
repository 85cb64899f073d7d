"""The viewer's web server: a small Starlette app over a run's label store.

Bound to 127.0.0.1 by default. Every API call and every clip carries the session token that
``pbrl-label`` (or the training run) prints in the viewer's URL; a request without it, from a
foreign ``Origin``, or for a ``Host`` other than the loopback address it was opened on gets a
4xx JSON error and changes nothing. Clips are served only from the run's clip folder, by a name
that must match ``CLIP_NAME``. Bodies are limited to ``MAX_BODY`` bytes and checked field by field.

API (JSON; the token goes in the ``X-PBRL-Token`` header or a ``token`` query parameter):

- ``GET  /api/state?annotator=NAME``: instruction, K, budget and progress counts, labels and
  repeats per minute, the trainer's step, its next round and whether it is waiting for labels,
  ``idle`` (why the page may have nothing to show: see ``_idle``), recent history.
- ``GET  /api/next?annotator=NAME[&exclude=ID,ID]``: the next query to show (a pair taken back
  first, a repeat when one is due: ``LabelStore.next_query``), or ``{"query": null}``:
  ``{id, k, repeat, order, clips, fps, frames, duration_s}``, where ``order[i]`` is the segment
  shown at position ``i`` (left first) and ``clips[i]`` its URL.
- ``POST /api/label``: ``{query_id, annotator, answer, order, ranking?, response_ms?, replays?,
  repeat?}``; answer ``left|right|equal|cant_tell`` for pairs, ``ranking`` with ``ranking`` =
  positions best first for K-way queries. Answers 200 only after the label is committed; 409
  once training has finished (the run would not use it).
- ``POST /api/undo``: ``{annotator}``: undoes that annotator's latest label and returns its
  ``query`` as it was shown, for the page to put back on screen at once.
- ``GET  /api/stats``: labels per annotator, self-consistency on repeats, agreement (Cohen's kappa).
- ``GET  /clips/NAME``: a clip file.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pbrl.human.stats import agreement_stats
from pbrl.human.store import LabelStore, StoreError

STATIC = Path(__file__).parent / "static"
CLIP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,96}\.(mp4|webm|gif)$")
MAX_BODY = 16 * 1024
TOKEN_HEADER = "x-pbrl-token"
_LABEL_FIELDS = {"query_id", "annotator", "answer", "order", "ranking", "response_ms", "replays", "repeat"}
_MEDIA = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}


@dataclass
class ViewerConfig:
    """What the viewer shows and how it serves; the human teacher's config fills it."""

    store_path: Path
    clip_dir: Path
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    instruction: str = "Which clip shows the better behaviour?"
    repeat_fraction: float = 0.0  # share of served queries that repeat a labelled one with sides swapped
    repeat_gap: int = 10  # a person sees a pair again only after this many of their own labels
    seed: int = 0


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        self.status, self.message, self.field = status, message, field


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": message} | ({"field": field} if field else {})
    return JSONResponse(body, status_code=status)


def make_app(cfg: ViewerConfig) -> Starlette:
    """The viewer app over ``cfg.store_path``; one store connection, used only on the event loop."""
    store = LabelStore(cfg.store_path)
    clip_dir = Path(cfg.clip_dir).resolve()
    rng = np.random.default_rng(cfg.seed)

    def check(request: Request) -> None:
        token = request.headers.get(TOKEN_HEADER) or request.query_params.get("token", "")
        if not secrets.compare_digest(token.encode(), cfg.token.encode()):
            raise ApiError(403, "missing or wrong session token: open the URL that pbrl printed", "token")
        host = request.headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if hostname not in ("127.0.0.1", "localhost", "[::1]") and not request.app.state.public:
            raise ApiError(403, f"requests must address the loopback host, not {host!r}", "host")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{host}":
            raise ApiError(403, f"cross-origin request from {origin!r} refused", "origin")

    async def read_json(request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length is not None and (not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY):
            raise ApiError(413, f"body larger than {MAX_BODY} bytes", "body")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise ApiError(413, f"body larger than {MAX_BODY} bytes", "body")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
            raise ApiError(400, "body is not valid JSON", "body") from None
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object", "body")
        return data

    def check_fields(data: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            name = unknown[0].encode("utf-8", "backslashreplace").decode()[:64]  # a lone surrogate would not encode
            raise ApiError(400, f"unknown field; allowed: {', '.join(sorted(allowed))}", name)

    def annotator_of(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > 64 or not value.isprintable():
            raise ApiError(400, f"got {value!r:.80}; must be a printable name of 1-64 characters", "annotator")
        return value.strip()

    def int_list(value: Any, name: str, k: int) -> list[int]:
        if (not isinstance(value, list) or len(value) != k
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                or sorted(value) != list(range(k))):
            raise ApiError(400, f"got {value!r:.80}; must list the positions 0..{k - 1} once each", name)
        return value

    def query_json(q, repeat: bool, order: list[int]) -> dict[str, Any]:
        names = json.loads(q["clips"])
        fps = float(q["clip_fps"])
        return {"id": int(q["id"]), "k": int(q["k"]), "repeat": repeat, "order": order,
                "clips": [f"/clips/{names[s]}?token={cfg.token}" for s in order],
                "fps": fps, "frames": int(q["clip_frames"]), "duration_s": int(q["clip_frames"]) / fps}

    async def index(request: Request) -> Response:
        check(request)
        html = (STATIC / "index.html").read_text()
        return HTMLResponse(html.replace("{{TOKEN}}", cfg.token), headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        check(request)
        meta = store.meta()
        counts = store.counts()
        annotator = request.query_params.get("annotator")
        waiting_since = meta.get("waiting_since")
        rate = store.label_rate()
        return JSONResponse({
            "instruction": meta.get("instruction", cfg.instruction), "k": meta.get("k", 2),
            "budget": meta.get("budget"), "counts": counts,
            "labels_per_minute": _round(rate["labels_per_minute"]), "repeats_per_minute": _round(rate["repeats_per_minute"]),
            "trainer": {"step": meta.get("trainer_step"), "total_steps": meta.get("total_steps"),
                        "next_round_step": meta.get("next_round_step"),
                        "mode": meta.get("mode"), "waiting": waiting_since is not None,
                        "waiting_s": None if waiting_since is None else round(time.time() - waiting_since, 1),
                        "alive": meta.get("trainer_heartbeat", 0) > time.time() - 30, "done": meta.get("done", False),
                        "unused_labels": meta.get("unused_labels", 0), "unlabelled": meta.get("unlabelled_at_end", 0)},
            "idle": _idle(meta, counts, store.budget_met(counts)),
            "annotator": annotator, "history": [_history_row(h) for h in store.history()],
        })

    async def next_query(request: Request) -> Response:
        check(request)
        annotator = annotator_of(request.query_params.get("annotator"))
        exclude = set()
        for part in request.query_params.get("exclude", "").split(","):
            if part.strip():
                if not re.fullmatch(r"[0-9]{1,18}", part.strip()):
                    raise ApiError(400, f"got {part!r:.40}; must be query ids separated by commas", "exclude")
                exclude.add(int(part))
        if len(exclude) > 16:
            raise ApiError(400, "at most 16 ids", "exclude")
        if store.get_meta("done", False):  # training has finished: a label now would not be used
            return JSONResponse({"query": None})
        found = store.next_query(annotator, cfg.repeat_fraction, rng, exclude=exclude, repeat_gap=cfg.repeat_gap)
        if found is None:
            return JSONResponse({"query": None})
        q, repeat = found
        k = int(q["k"])
        if repeat:  # the same clips with their sides swapped (K > 2: in reverse order)
            original = store.training_labels([int(q["id"])]).get(int(q["id"]))
            order = list(reversed(original["shown_order"])) if original else list(rng.permutation(k))
        else:
            order = [int(i) for i in rng.permutation(k)]
        return JSONResponse({"query": query_json(q, repeat, order)})

    async def label(request: Request) -> Response:
        check(request)
        data = await read_json(request)
        check_fields(data, _LABEL_FIELDS)
        qid = data.get("query_id")
        if not isinstance(qid, int) or isinstance(qid, bool) or not 0 < qid < 2**62:
            raise ApiError(400, f"got {qid!r:.80}; must be a query id", "query_id")
        annotator = annotator_of(data.get("annotator"))
        answer = data.get("answer")
        try:
            q = store.query(qid)
        except StoreError as exc:
            raise ApiError(exc.status, exc.message, exc.field) from None
        k = int(q["k"])
        order = int_list(data.get("order"), "order", k)
        ranking = None
        if answer == "ranking":
            positions = int_list(data.get("ranking"), "ranking", k)
            ranking = [order[p] for p in positions]  # screen positions -> stored segment indices
        elif "ranking" in data and data["ranking"] is not None:
            raise ApiError(400, f"only allowed with answer 'ranking', not {answer!r:.40}", "ranking")
        repeat = data.get("repeat", False)
        if not isinstance(repeat, bool):
            raise ApiError(400, f"got {repeat!r:.40}; must be true or false", "repeat")
        if store.get_meta("done", False):
            raise ApiError(409, "training has finished: this run no longer takes labels", "query_id")
        try:
            label_id = store.add_label(qid, annotator, answer if isinstance(answer, str) else repr(answer)[:40],
                                       order, ranking, data.get("response_ms"), data.get("replays"), repeat)
        except StoreError as exc:
            raise ApiError(exc.status, exc.message, exc.field) from None
        return JSONResponse({"ok": True, "label_id": label_id, "counts": store.counts()})

    async def undo(request: Request) -> Response:
        check(request)
        data = await read_json(request)
        check_fields(data, {"annotator"})
        annotator = annotator_of(data.get("annotator"))
        try:
            qid = store.undo_last(annotator)
        except StoreError as exc:
            raise ApiError(exc.status, exc.message, exc.field) from None
        if qid is None:
            raise ApiError(409, f"{annotator!r} has no label to undo", "annotator")
        undone = store.undone_label(annotator)
        # the pair comes back at once, as it was shown, so the page need not ask (and the server not draw) again
        query = query_json(store.query(qid), undone["is_repeat"], undone["shown_order"])
        return JSONResponse({"ok": True, "query_id": qid, "query": query, "counts": store.counts()})

    async def stats(request: Request) -> Response:
        check(request)
        return JSONResponse(agreement_stats(store.labels()))

    async def clip(request: Request) -> Response:
        check(request)
        name = request.path_params["name"]
        if not CLIP_NAME.fullmatch(name):
            raise ApiError(404, "no such clip", "name")
        path = (clip_dir / name).resolve()
        if path.parent != clip_dir or not path.is_file():
            raise ApiError(404, "no such clip", "name")
        return FileResponse(path, media_type=_MEDIA[path.suffix[1:]], headers={"Cache-Control": "private, max-age=3600"})

    async def api_error(request: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.message, exc.field)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, exc.detail)

    app = Starlette(
        routes=[Route("/", index), Route("/api/state", state), Route("/api/next", next_query),
                Route("/api/label", label, methods=["POST"]), Route("/api/undo", undo, methods=["POST"]),
                Route("/api/stats", stats), Route("/clips/{name}", clip),
                Mount("/static", StaticFiles(directory=STATIC), name="static")],
        exception_handlers={ApiError: api_error, HTTPException: http_error})
    app.state.public = False
    app.state.store = store
    app.state.config = cfg
    return app


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _idle(meta: dict[str, Any], counts: dict[str, int], budget_met: bool) -> dict[str, Any]:
    """Why the page may have nothing to show: the one state the stage names when no pair is held.

    ``finished`` (training is over), ``all_done`` (every query of the budget is labelled),
    ``rendering`` (clips being made), ``ready`` (pairs wait: the page should be showing one),
    ``no_trainer`` (no trainer step yet, or no heartbeat) or ``next_round`` (the agent asks again at
    ``next_round_step``).
    """
    trainer_alive = meta.get("trainer_heartbeat", 0) > time.time() - 30
    if meta.get("done", False):
        kind = "finished"
    elif budget_met:
        kind = "all_done"
    elif counts["rendering"]:
        kind = "rendering"
    elif counts["ready"]:
        kind = "ready"
    elif meta.get("trainer_step") is None or not trainer_alive:
        kind = "no_trainer"
    else:
        kind = "next_round"
    return {"kind": kind, "rendering": counts["rendering"], "next_round_step": meta.get("next_round_step"),
            "step": meta.get("trainer_step"), "total_steps": meta.get("total_steps")}


def _history_row(h: dict[str, Any]) -> dict[str, Any]:
    return {"label_id": h["id"], "query_id": h["query_id"], "answer": h["answer"], "annotator": h["annotator"],
            "repeat": bool(h["is_repeat"]), "undone": bool(h["undone"]), "created": h["created"]}


class ViewerServer:
    """uvicorn serving ``app`` from a background thread (the training process keeps its main thread).

    ``port=0`` takes a free port; ``url`` is the address to open, token included.
    """

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0):
        import socket
        import threading

        import uvicorn

        self.app = app
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.host, self.port = host, sock.getsockname()[1]
        app.state.public = host not in ("127.0.0.1", "localhost", "::1")
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name="pbrl-viewer")
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline and self.thread.is_alive():
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError(f"the viewer did not start on {host}:{self.port}")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.app.state.config.token}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
