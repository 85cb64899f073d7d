"""Export and import of human labels with their segments: a folder of three files.

- ``labels.jsonl``: one JSON object per label, oldest first, undone ones and repeats included
  (flagged): ``label_id, query_id, annotator, answer, ranking, shown_order, target, response_ms,
  replays, is_repeat, undone, created, consumed`` plus the query's ``k, round, env_step, selection,
  score``. ``target`` is what the reward model trains on (``{"ranking": [...], "equal": bool}``, or
  null for "can't tell"), from ``store.training_target``.
- ``segments.npz``: ``query_id [Q]`` and, aligned with it, ``obs [Q,K,T,o]``, ``action [Q,K,T,a]``,
  ``sim_state [Q,K,T,d]`` and ``index [Q,K,T]`` (the replay-buffer slots they came from).
- ``meta.json``: the store's settings (env id, instruction, K, ...), ``format_version`` and the
  consistency statistics at export time.

``load_labels`` turns an export into a ``LabelSet`` for training a reward model offline;
``import_store`` copies one into a run's store, so that a new run starts from those labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.human.stats import agreement_stats
from pbrl.human.store import LabelStore, StoreError, training_target
from pbrl.reward.labels import LabelSet

FORMAT_VERSION = 1


def export_store(store: LabelStore, out: str | Path) -> dict[str, int]:
    """Write ``store``'s labels and the segments of every labelled query to the folder ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = store.labels(include_undone=True)
    queries = {int(r["id"]): dict(r) for r in store.db.execute(
        "SELECT id, k, round, env_step, selection, score FROM queries")}
    qids = sorted({lab["query_id"] for lab in labels})
    with open(out / "labels.jsonl", "w") as f:
        for lab in labels:
            q = queries[lab["query_id"]]
            target = training_target(lab["answer"], lab["shown_order"], lab["ranking"])
            row = {"label_id": lab["id"], "query_id": lab["query_id"], "annotator": lab["annotator"],
                   "answer": lab["answer"], "ranking": lab["ranking"], "shown_order": lab["shown_order"],
                   "target": None if target is None else {"ranking": target.ranking, "equal": target.equal},
                   "response_ms": lab["response_ms"], "replays": lab["replays"], "is_repeat": bool(lab["is_repeat"]),
                   "undone": bool(lab["undone"]), "created": lab["created"], "consumed": lab["consumed"],
                   "k": q["k"], "round": q["round"], "env_step": q["env_step"], "selection": q["selection"],
                   "score": q["score"]}
            f.write(json.dumps(row) + "\n")
    segs = [store.segments(q) for q in qids]
    arrays = {key: np.stack([s[key] for s in segs]) for key in ("obs", "action", "sim_state", "index")} if segs else {}
    np.savez_compressed(out / "segments.npz", query_id=np.asarray(qids, np.int64), **arrays)
    meta = store.meta() | {"format_version": FORMAT_VERSION, "stats": agreement_stats(store.labels())}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return {"labels": len(labels), "queries": len(qids)}


def _read(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], dict[str, Any]]:
    path = Path(path)
    for name in ("labels.jsonl", "segments.npz", "meta.json"):
        if not (path / name).is_file():
            raise StoreError("export", f"{path} is not a pbrl label export: {name} is missing", 404)
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise StoreError("export", f"format_version {meta.get('format_version')!r}; this pbrl reads {FORMAT_VERSION}")
    rows = [json.loads(line) for line in (path / "labels.jsonl").read_text().splitlines() if line.strip()]
    with np.load(path / "segments.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return rows, arrays, meta


def load_labels(path: str | Path) -> tuple[LabelSet, dict[str, Any]]:
    """The training labels of an export (first standing, non-repeat, not "can't tell" label per query)."""
    rows, arrays, meta = _read(path)
    position = {int(q): i for i, q in enumerate(arrays["query_id"])}
    chosen: dict[int, dict[str, Any]] = {}
    for row in rows:
        if not row["undone"] and not row["is_repeat"] and row["query_id"] not in chosen:
            chosen[row["query_id"]] = row
    kept = [r for r in chosen.values() if r["target"] is not None]
    if "obs" not in arrays:
        raise StoreError("export", f"{path} holds no labelled segments")
    _, k, t, o = arrays["obs"].shape
    labels = LabelSet(k, t, o, arrays["action"].shape[-1])
    if kept:
        idx = np.asarray([position[r["query_id"]] for r in kept])
        labels.add(arrays["obs"][idx], arrays["action"][idx], np.asarray([r["target"]["ranking"] for r in kept]),
                   np.asarray([r["target"]["equal"] for r in kept]))
    return labels, meta


def import_store(path: str | Path, store: LabelStore) -> dict[str, int]:
    """Copy an export's queries and standing labels into ``store`` (new ids; the queries need their clips rendered)."""
    rows, arrays, meta = _read(path)
    new_id: dict[int, int] = {}
    for i, qid in enumerate(arrays["query_id"]):
        new_id[int(qid)] = store.add_queries(arrays["obs"][i:i + 1], arrays["action"][i:i + 1],
                                             arrays["sim_state"][i:i + 1], arrays["index"][i:i + 1],
                                             selection="imported")[0]
    n = 0
    for row in rows:
        if row["undone"]:
            continue
        qid = new_id[row["query_id"]]
        store.add_label(qid, row["annotator"], row["answer"], row["shown_order"], row["ranking"], row["response_ms"],
                        row["replays"], row["is_repeat"], require_ready=False)
        n += 1
    return {"queries": len(new_id), "labels": n}
