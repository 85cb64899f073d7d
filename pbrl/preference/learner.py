"""One feedback round: select queries from the episode store → ask the teacher → train the reward model.

``PreferenceLearner`` is the one place that owns the reward model, the labels, the teacher and the
feedback budget; ``pbrl.preference.feedback`` calls ``round`` on schedule, whatever the agent.
Config groups read here: ``feedback``, ``query``, ``reward_model`` and ``teacher``
(conf/config.yaml documents each field).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Mapping

import numpy as np
import torch

import pbrl.human.teacher  # noqa: F401  (registers teacher=human; the viewer's web stack is not imported)
from pbrl.buffers.episodes import EpisodeStore, QueryPool
from pbrl.errors import ConfigError, check_choice, check_int
from pbrl.query import RULES, SelectionContext, select
from pbrl.reward.crop import make_crop
from pbrl.reward.labels import LabelSet
from pbrl.reward.model import SQUASH, RewardModel, RewardModelConfig
from pbrl.reward.rime import RimeWarmStart, make_selector
from pbrl.reward.surf import make_pool
from pbrl.teachers import RewardLedger, Teacher, make_teacher
from pbrl.teachers.base import OUTCOMES, RoundInfo


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the feedback, query, pretrain and reward_model settings, naming the field on error."""
    fb, q, rm = cfg["feedback"], cfg["query"], cfg["reward_model"]
    check_int("feedback.max_feedback", fb["max_feedback"], minimum=0)
    check_int("feedback.mb_size", fb["mb_size"], minimum=1)
    check_int("feedback.num_interact", fb["num_interact"], minimum=1)
    check_int("feedback.segment", fb["segment"], minimum=1)
    check_int("feedback.large_batch", fb["large_batch"], minimum=1)
    check_int("feedback.last_episodes", fb["last_episodes"], minimum=1)
    check_int("feedback.reset_updates", fb["reset_updates"], minimum=0)
    check_choice("query.selection", q["selection"], tuple(RULES))
    check_int("query.k", q["k"], minimum=2)
    if q["k"] > 8:
        raise ConfigError("query.k", f"got {q['k']}; allowed: 2 (pairs) to 8 (rankings)")
    check_int("pretrain.steps", cfg["pretrain"]["steps"], minimum=0)
    check_int("pretrain.k", cfg["pretrain"]["k"], minimum=1)
    if not isinstance(cfg["pretrain"]["reset_actor"], bool):
        raise ConfigError("pretrain.reset_actor", f"got {cfg['pretrain']['reset_actor']!r}; allowed: true, false")
    fields = {f.name for f in dataclasses.fields(RewardModelConfig)}
    unknown = sorted(set(rm) - fields)
    if unknown:
        raise ConfigError(f"reward_model.{unknown[0]}",
                          f"not a reward-model setting; allowed: {', '.join(sorted(fields))}")
    check_choice("reward_model.output", rm["output"], tuple(SQUASH))
    for key in ("ensemble_size", "hidden_dim", "depth", "batch_size", "epochs", "relabel_batch"):
        check_int(f"reward_model.{key}", rm[key], minimum=1)
    if not isinstance(rm["lr"], (int, float)) or isinstance(rm["lr"], bool) or rm["lr"] <= 0:
        raise ConfigError("reward_model.lr", f"got {rm['lr']!r}; must be a number > 0")
    if isinstance(rm["scale"], bool) or not isinstance(rm["scale"], (int, float)) or rm["scale"] <= 0:
        raise ConfigError("reward_model.scale", f"got {rm['scale']!r}; must be a number > 0")
    if not isinstance(rm["stop_accuracy"], (int, float)) or not 0 < rm["stop_accuracy"] <= 1:
        raise ConfigError("reward_model.stop_accuracy", f"got {rm['stop_accuracy']!r}; must be in (0, 1]")


class PreferenceLearner:
    """Reward model + labels + teacher + budget, driven round by round by the workspace."""

    def __init__(self, cfg: Mapping[str, Any], obs_dim: int, action_dim: int, ledger: RewardLedger,
                 device: torch.device, precision: str, rng: np.random.Generator, run_dir: str | None = None,
                 log: Callable[[str], None] | None = None, session=None):
        validate(cfg)
        self.fb, self.query_cfg = cfg["feedback"], cfg["query"]
        self.k, self.length = int(self.query_cfg["k"]), int(self.fb["segment"])
        self.device = device
        self.rng = rng
        self.generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        self.model = RewardModel(obs_dim, action_dim, RewardModelConfig(**cfg["reward_model"]), device, precision)
        self.crop = make_crop(cfg["reward_model"], self.length)  # reward_model.crop=qpa|surf, else None
        # SURF's crop stores segments 2 x window longer than the teacher judges: queries, labels and pool use these
        self.margin = self.crop.window if self.crop is not None else 0
        self.query_length = self.length + 2 * self.margin
        if self.margin and cfg["teacher"]["name"] == "human":
            raise ConfigError("reward_model.crop", "surf shows the teacher the centre of longer segments, which a "
                                                   "person's viewer does not; with teacher=human use crop=qpa or none")
        self._full: dict[int, QueryPool] = {}  # the whole segments of queries a teacher judges by their centre
        self.labels = LabelSet(self.k, self.query_length, obs_dim, action_dim)
        self.selector = make_selector(cfg["reward_model"], self.k)  # reward_model.robust=rime, else None
        self.warm_start = (RimeWarmStart(self.selector.cfg, int(cfg["pretrain"]["k"]), device)
                           if self.selector is not None and self.selector.cfg.warm_start_updates else None)
        self.pool = make_pool(cfg["reward_model"], self.k, self.query_length)  # reward_model.semi=true, else None
        self.ledger = ledger
        # the teacher draws its noise from its own stream, so its presets do not shift the run's other draws
        run = {"run_dir": run_dir, "env_id": cfg["env"]["id"], "env_kwargs": cfg["env"].get("kwargs"), "k": self.k,
               "budget": int(self.fb["max_feedback"]), "seed": int(cfg.get("seed", 0)),
               "instruction": cfg.get("instruction"), "log": log, "session": session}
        self.teacher: Teacher = make_teacher(cfg["teacher"], ledger, np.random.default_rng(int(rng.integers(2**63))),
                                             run)
        self.asked = 0  # queries put to the teacher, skipped ones included (the budget counts these)
        self.rounds = 0  # rounds that asked queries or took labels
        self.trainings = 0  # rounds that trained the reward model
        self.outcomes = {o: 0 for o in OUTCOMES}
        self.heldout_correct, self.heldout_total = 0, 0  # new labels predicted before training on them
        self.last: dict[str, float] = {}  # the latest round's statistics

    @property
    def budget_left(self) -> int:
        return int(self.fb["max_feedback"]) - self.asked

    @property
    def trained(self) -> bool:
        return self.trainings > 0 and len(self.labels) > 0

    def can_ask(self, store: EpisodeStore) -> bool:
        """Whether the query pool holds at least one valid segment (episodes may all be shorter early on)."""
        return store.can_segment(self.query_length, int(self.fb["last_episodes"]))

    def wants_round(self) -> bool:
        """Budget left to ask, or labels still to come from queries already asked (or given, not yet taken)."""
        return self.budget_left > 0 or self.teacher.pending() > 0 or self.teacher.undelivered() > 0

    def round(self, store: EpisodeStore, step: int | None = None, ask: bool = True, rounds: int = 1
              ) -> dict[str, float]:
        """One feedback round: ``rounds × mb_size`` queries (fewer if the budget ends), labels, reward training.

        ``ask=False`` asks nothing and only folds in labels that have arrived (the end of an
        asynchronous run).
        The first round selects uniformly (as PEBBLE does: the model knows nothing yet). Labels
        whose outcome the current model predicts before training count towards the held-out
        accuracy: each round's new labels are a slice the model has never trained on. With an
        asynchronous teacher the round folds in whatever labels have arrived (perhaps none) and
        trains only if there are new ones; ``stats["trained"]`` says whether it did.
        """
        started = time.perf_counter()
        if self.pool is not None:
            self.pool.store = store  # the pool holds rows of this store (also after a resume)
        count = min(rounds * int(self.fb["mb_size"]), self.budget_left) if ask else 0
        if count > 0:
            rule = "uniform" if self.rounds == 0 else self.query_cfg["selection"]
            ctx = SelectionContext(self.model, self.labels.features(), self.rng)
            try:
                queries = select(rule, store, count, ctx, self.k, self.query_length, int(self.fb["large_batch"]),
                                 int(self.fb["last_episodes"]))
            except ValueError as exc:  # no episode long enough for one segment
                raise ConfigError("feedback.segment", f"{exc} (segment={self.length}); use shorter segments, a later "
                                                      "first round (pretrain.steps), or env.terminate=false") from None
            if store.sim_state.shape[1]:
                queries.sim_state = store.sim_state[queries.index]
            if self.margin:  # SURF: the teacher judges the centre; the labels keep the whole segments
                judged = queries.centre(self.margin)
                self._full[id(judged)] = queries
                queries = judged
            self.teacher.ask(queries, RoundInfo(self.rounds, step, rule, self._disagreement(queries)))
            self.asked += count
            if self.pool is not None:  # SURF: random unlabelled pairs, inv_label_ratio per query asked
                self.pool.add(store, count * self.pool.cfg.inv_label_ratio, self.rng, int(self.fb["last_episodes"]))
        first_new = len(self.labels)
        for queries, answers in self.teacher.collect(wait=not self.teacher.asynchronous):
            queries = self._full.pop(id(queries), queries)
            for outcome, n in answers.counts().items():
                self.outcomes[outcome] += n
            keep = ~answers.skipped
            self.labels.add(queries.obs.numpy()[keep], queries.action.numpy()[keep], answers.ranking[keep],
                            answers.equal[keep])
        new = np.arange(first_new, len(self.labels))
        # a synchronous teacher's round always trains (as PEBBLE's); an asynchronous one only on new labels
        train = len(self.labels) > 0 and (len(new) > 0 or (count > 0 and not self.teacher.asynchronous))
        stats: dict[str, float] = {"feedback_asked": self.asked, "labels": len(self.labels), "trained": float(train),
                                   "new_labels": len(new), "asked_now": count}
        if self.trained and len(new):
            acc = self.model.accuracy(self.labels, new)
            ranked = int((~self.labels.equal[new]).sum())
            if ranked:
                self.heldout_correct += round(acc * ranked)
                self.heldout_total += ranked
            stats["reward_heldout_acc_round"] = acc
        if train:
            stats.update(self.model.fit(self.labels, self.generator, self.selector, self.crop, self.pool))
            self.trainings += 1
        if count > 0 or train:
            self.rounds += 1
        stats["reward_round_s"] = time.perf_counter() - started
        self.last = stats
        return stats

    def _disagreement(self, queries) -> np.ndarray | None:
        """Ensemble spread of each query's P(best), recorded with a person's queries (None before training)."""
        if not self.trained or not getattr(self.teacher, "records_scores", False):
            return None
        return self.model.choice_probs(queries.obs, queries.action).std(0)[:, 0].float().cpu().numpy()

    def diagnostics(self) -> dict[str, float]:
        """Counters and accuracies for metrics.csv and summary.json."""
        out: dict[str, float] = {"feedback_asked": self.asked, "labels": len(self.labels), "rounds": self.rounds}
        out.update({f"labels_{o}": n for o, n in self.outcomes.items()})
        out["reward_heldout_acc"] = (self.heldout_correct / self.heldout_total if self.heldout_total else math.nan)
        out["reward_train_acc"] = self.last.get("reward_train_acc", math.nan)
        return out

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "labels": self.labels.state_dict(),
                "teacher": self.teacher.state_dict(), "asked": self.asked, "rounds": self.rounds,
                "trainings": self.trainings,
                "outcomes": dict(self.outcomes), "heldout": (self.heldout_correct, self.heldout_total),
                "last": dict(self.last), "generator": self.generator.get_state(),
                **({"rime": self.selector.state_dict()} if self.selector is not None else {}),
                **({"rime_warm_start": self.warm_start.state_dict()} if self.warm_start is not None else {}),
                **({"surf_rows": self.pool.rows} if self.pool is not None else {})}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.labels.load_state_dict(state["labels"])
        self.teacher.load_state_dict(state["teacher"])
        self.asked, self.rounds = state["asked"], state["rounds"]
        self.trainings = state.get("trainings", self.rounds)  # older snapshots trained in every round
        self.asked = max(self.asked, self.teacher.already_asked())  # queries a person holds from after the snapshot
        self.outcomes = dict(state["outcomes"])
        self.heldout_correct, self.heldout_total = state["heldout"]
        self.last = dict(state["last"])
        self.generator.set_state(state["generator"])
        if self.selector is not None and "rime" in state:
            self.selector.load_state_dict(state["rime"])
        if self.warm_start is not None and "rime_warm_start" in state:
            self.warm_start.load_state_dict(state["rime_warm_start"])
        if self.pool is not None and "surf_rows" in state:
            self.pool.rows = np.asarray(state["surf_rows"])
