"""How consistent the labels are: each annotator's self-consistency on repeats, and agreement between annotators.

A repeat is a labelled query shown again later with its sides swapped. Both labels are compared
in segment terms (which stored segment won, or "equal"), so a person who answers by screen side
rather than by behaviour shows up as inconsistent. Against the same annotator's original label a
repeat measures self-consistency; against another annotator's, agreement, reported as the raw rate
and as Cohen's kappa (agreement corrected for what the two would reach by chance).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pbrl.human.store import training_target


def _category(label: dict[str, Any]) -> str | None:
    """"equal", the winning segment ("s0", "s1", ...), or None for can't tell."""
    target = training_target(label["answer"], label["shown_order"], label["ranking"])
    if target is None:
        return None
    return "equal" if target.equal else f"s{target.ranking[0]}"


def cohens_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters' categories; None without pairs or when chance agreement is 1."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(first[c] * second[c] for c in set(first) | set(second)) / n**2
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


def agreement_stats(labels: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-annotator counts and self-consistency, plus pairwise agreement, from standing labels."""
    originals = {lab["query_id"]: lab for lab in labels if not lab["is_repeat"] and not lab["undone"]}
    per = defaultdict(lambda: {"labels": 0, "repeats": 0, "answers": Counter(), "self_pairs": []})
    between: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for lab in labels:
        if lab["undone"]:
            continue
        who = lab["annotator"]
        per[who]["labels"] += 1
        per[who]["answers"][lab["answer"]] += 1
        if not lab["is_repeat"]:
            continue
        per[who]["repeats"] += 1
        first = originals.get(lab["query_id"])
        if first is None:
            continue
        a, b = _category(first), _category(lab)
        if a is None or b is None:
            continue
        if first["annotator"] == who:
            per[who]["self_pairs"].append((a, b))
        else:
            between[tuple(sorted((first["annotator"], who)))].append((a, b))
    annotators = {}
    for who, d in sorted(per.items()):
        pairs = d["self_pairs"]
        annotators[who] = {"labels": d["labels"], "repeats": d["repeats"], "answers": dict(d["answers"]),
                           "self_consistency": (sum(a == b for a, b in pairs) / len(pairs)) if pairs else None,
                           "self_pairs": len(pairs)}
    agreement = [{"annotators": list(key), "pairs": len(pairs),
                  "agreement": sum(a == b for a, b in pairs) / len(pairs), "kappa": cohens_kappa(pairs)}
                 for key, pairs in sorted(between.items())]
    return {"annotators": annotators, "agreement": agreement}
