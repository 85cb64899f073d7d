"""The reward side of a run: which reward the agent learns from now, and the feedback rounds.

``make_feedback`` builds ``EnvFeedback`` for ``teacher=none`` (the env's reward, no rounds) or
``PreferenceFeedback`` (PEBBLE: the k-NN bonus while pretraining, then the learned reward, with
rounds on the schedule of ``pbrl.preference.schedule``). The run asks it, every step, for the
phase and the reward source, and calls ``after_step``; the feedback object runs due rounds and
tells the agent when the learned reward changed. The run never branches on the teacher or on the
agent.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from pbrl.agents.base import Agent, RewardChange
from pbrl.buffers.episodes import EpisodeStore
from pbrl.envs.make import EnvSpec
from pbrl.errors import ConfigError
from pbrl.intrinsic.state_entropy import StateEntropy
from pbrl.preference.learner import PreferenceLearner
from pbrl.preference.schedule import FeedbackSchedule, Phase, crossed
from pbrl.reward.rune import agent_reward
from pbrl.reward.source import EnvReward, LearnedReward, RewardSource, StateEntropyReward
from pbrl.teachers import RewardLedger

TICK_EVERY = 500  # steps between progress notes to the teacher (a person's viewer)


class EnvFeedback:
    """No teacher: the agent learns from the env's reward after the seed steps."""

    preference = False

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = cfg
        self.schedule = FeedbackSchedule(cfg["seed_steps"], 0, 1, preference=False)
        self.source = EnvReward()

    def phase(self, step: int) -> Phase:
        return self.schedule.phase(step)

    def reward(self, step: int) -> RewardSource:
        return self.source

    def record(self, rows: np.ndarray, reward: np.ndarray, ended: np.ndarray) -> np.ndarray:
        """The env's reward of one step (rows: where the episode store put it); returns what the agent may see."""
        return reward

    def after_step(self, prev: int, step: int, agent: Agent) -> None:
        """No rounds."""

    def episode_row(self, env: int, agent_return: float, episode: int) -> dict:
        return {"return": agent_return}

    def learned_return(self, obs: np.ndarray, action: np.ndarray) -> float | None:
        return None

    def diagnostics(self) -> dict:
        return {}

    def summary(self) -> dict:
        return {}

    def save_outputs(self, run_dir: Path) -> None:
        """Nothing beyond the agent."""

    def finished_note(self, summary: Mapping[str, Any]) -> str:
        return ""

    def close(self) -> None:
        """Nothing to release."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict, order: np.ndarray | None = None) -> None:
        """Nothing to restore."""


class PreferenceFeedback(EnvFeedback):
    """PEBBLE's reward side: bonus, rounds, learned reward; see the module docstring."""

    preference = True

    def __init__(self, cfg: Mapping[str, Any], store: EpisodeStore, n_envs: int, spec: EnvSpec,
                 device: torch.device, precision: str, rng: np.random.Generator, run_dir: Path,
                 say: Callable[[str], None], log_round: Callable[[dict], None], session=None):
        self.cfg, self.store, self.log, self.log_round, self.session = cfg, store, say, log_round, session
        self.ledger = RewardLedger(store.capacity, n_envs)
        self.learner = PreferenceLearner(cfg, spec.obs_dim, spec.action_dim, self.ledger, device, precision, rng,
                                         str(run_dir), log=say, session=session)
        self.bonus = StateEntropyReward(StateEntropy(k=cfg["pretrain"]["k"], device=device),
                                        pool=lambda: store.observations().to(device))
        self.learned = LearnedReward(self.learner.model, lambda: self.learner.trainings)
        self.learned.batch_size = int(cfg["reward_model"]["relabel_batch"])
        self.step = 0  # the run's env step, as last asked for the reward (RUNE's bonus decays with it)
        self.agent_reward = agent_reward(cfg, self.learned, lambda: self.step)  # the learned reward (+ reward.bonus)
        self.schedule = FeedbackSchedule(cfg["seed_steps"], cfg["pretrain"]["steps"],
                                         int(cfg["feedback"]["num_interact"]))
        self.waiting_since: int | None = None  # step at which a due round began waiting for long-enough episodes
        self.timings = {"relabel_s": 0.0, "reward_rounds_s": 0.0}
        self.labels_note: str | None = None  # what became of a person's labels, from the teacher at the end

    @property
    def teacher(self):
        return self.learner.teacher

    def phase(self, step: int) -> Phase:
        return self.schedule.phase(step, self.learner.rounds, self.learner.trained)

    def reward(self, step: int) -> RewardSource:
        self.step = step
        return self.bonus if self.phase(step) is Phase.PRETRAIN else self.agent_reward

    def record(self, rows: np.ndarray, reward: np.ndarray, ended: np.ndarray) -> np.ndarray:
        """The env's true reward of one step goes into the ledger only; the agent's side sees NaN."""
        self.ledger.record(rows, reward, ended)
        return np.full_like(reward, np.nan)

    def episode_row(self, env: int, agent_return: float, episode: int) -> dict:
        """The true return (a diagnostic from the ledger) beside the learned one the agent saw: summed step by
        step, or (NaN: the agent took no step rewards) the current model's return of the stored ``episode``; NaN
        for an episode that ended before the first reward model."""
        if not self.learner.trained:
            return {"return": float(self.ledger.last_return[env]), "learned_return": math.nan}
        if math.isnan(agent_return):
            rows = self.store.episode_rows(episode)
            agent_return = self.learned_return(self.store.obs[rows], self.store.action[rows])
        return {"return": float(self.ledger.last_return[env]), "learned_return": agent_return}

    # ----------------------------------------------------------------------------------- rounds
    def after_step(self, prev: int, step: int, agent: Agent) -> None:
        """Run a due (or waiting) round; at the end fold in late labels; keep the teacher informed.

        During pretraining RIME's warm start (``reward_model.robust=rime``) fits the reward model to the bonus."""
        warm = self.learner.warm_start
        if warm is not None and self.phase(prev) is Phase.PRETRAIN and not self.learner.trained:
            warm.step(self.learner.model, self.store.observations(), self.store.actions(), self.learner.generator)
        due = self.schedule.due(prev, step) and self.learner.wants_round()  # last: a person's teacher reads its store
        awaiting_first = self.learner.rounds == 0 and step >= self.schedule.first
        if due or awaiting_first or self.waiting_since is not None:
            self._round_when_possible(prev, step, agent)
        if step >= self.cfg["steps"] > prev:
            self._fold_in_late_labels(step)  # before the final evaluation, so its learned return sees them
            # from here on no answer could be used: the viewer says training has finished and takes no more
            self.labels_note = self.teacher.finish()
        if crossed(prev, step, TICK_EVERY):
            self._tick(step)

    def _round_when_possible(self, prev: int, step: int, agent: Agent) -> None:
        """Ask a due round now, or, if no stored episode holds a whole segment yet, as soon as one does.

        While it waits the run is in the WAITING phase (first round) or keeps learning (later rounds),
        and checks again every ``segment`` steps. A scheduled round that comes while one waits is asked
        with it (both rounds' queries, one reward update), so a wait never costs labels of the budget.
        A waiting round survives a resume.
        """
        length, since = self.learner.length, self.waiting_since
        if since is not None and not crossed(prev, step, length, since):
            return
        if self.learner.can_ask(self.store):
            missed = 0 if since is None else self.schedule.rounds_in(since, step)  # scheduled while it waited
            if since is not None:
                self.log(f"the round due at step {since} is asked at step {step}"
                         + (f", with the {missed} scheduled since ({1 + missed} rounds' queries)" if missed else ""))
            self.waiting_since = None
            self._round(step, agent, 1 + missed)
        elif since is None:
            self.waiting_since = step
            self.log(f"feedback round due at step {step} waits: no stored episode (of the last "
                     f"{self.cfg['feedback']['last_episodes']}) holds {length} consecutive steps yet "
                     f"(feedback.segment={length}); the round is asked once one does")

    def _round(self, step: int, agent: Agent, rounds: int = 1) -> None:
        """Ask the teacher (``rounds`` rounds' queries) and train the reward model; the agent then updates its
        rewards (first: PEBBLE's reset)."""
        first = not self.learner.trained
        stats = self.learner.round(self.store, step, rounds=rounds)
        self.timings["reward_rounds_s"] += stats["reward_round_s"]
        self._tick(step)  # the viewer learns at once when the next round comes
        if not stats["trained"]:  # an asynchronous teacher had no new labels yet
            if stats["asked_now"]:
                self.log(f"feedback round {self.learner.rounds} at step {step}: asked {stats['asked_now']} queries; "
                         f"{stats['labels']} labels so far, the reward model trains once new ones arrive")
            return
        started = time.perf_counter()  # relabel_s: the agent taking up the new reward (SAC: relabel; first round:
        # also the critic reset and its reset_updates, which the per-step time held before issue 15)
        agent.reward_changed(RewardChange(self.agent_reward, first,
                                          reset_updates=int(self.cfg["feedback"]["reset_updates"]),
                                          reset_actor=bool(self.cfg["pretrain"]["reset_actor"]),
                                          last=self.learner.budget_left <= 0))
        stats["relabel_s"] = time.perf_counter() - started
        self.timings["relabel_s"] += stats["relabel_s"]
        stats["env_step"] = step
        self.log_round(stats)
        self.log(f"feedback round {self.learner.rounds} at step {step}: {stats['labels']} labels, "
                 f"train acc {stats.get('reward_train_acc', math.nan):.3f} after {stats['reward_epochs']} epochs, "
                 f"{stats['reward_round_s'] + stats['relabel_s']:.1f}s")

    def _fold_in_late_labels(self, step: int) -> None:
        """The end of the run: answers given after the last round train the reward model once more.

        They come from a person labelling asynchronously, or from one who labelled while a stopped run
        was down. The agent does not train on that update (its training is over); the saved
        ``reward_model.pt`` and the final evaluation's learned return do, so no answer is left out.
        """
        if not self.teacher.undelivered():
            return
        stats = self.learner.round(self.store, step, ask=False)
        self.timings["reward_rounds_s"] += stats["reward_round_s"]
        if not stats["trained"]:
            return
        stats["env_step"] = step
        self.log_round(stats)
        self.log(f"final reward update at step {step}: {stats['new_labels']} labels arrived after the last "
                 f"round ({stats['labels']} in all), train acc {stats.get('reward_train_acc', math.nan):.3f}; "
                 "saved in reward_model.pt (the agent's training had ended)")

    def _tick(self, step: int) -> None:
        """Tell the teacher (a person's viewer) the step, and when the next round comes (None: no more)."""
        self.teacher.tick(step, self.cfg["steps"], self._next_round_step(step))

    def _next_round_step(self, step: int) -> int | None:
        """The step of the next round; a round that waits for a long-enough episode is due now."""
        if self.learner.budget_left <= 0:
            return None
        if self.waiting_since is not None or self.phase(step) is Phase.WAITING:
            return step
        nxt = self.schedule.next_round(step)
        return nxt if nxt <= self.cfg["steps"] else None

    # --------------------------------------------------------------------------- diagnostics
    def learned_return(self, obs: np.ndarray, action: np.ndarray) -> float | None:
        """The reward model's return of one episode's steps (NaN before the first round)."""
        if not self.learner.trained:
            return math.nan
        return float(self.learner.model.reward(torch.as_tensor(obs), torch.as_tensor(action)).sum())

    def reward_correlation(self, recent: int = 10000) -> float:
        """Pearson correlation of learned and true per-step reward over the newest ``recent`` stored steps.

        A diagnostic only: the true rewards come from the teacher's ledger and go nowhere but the log.
        """
        if not self.learner.trained or self.store.size < 2:
            return math.nan
        idx = self.store.chronological()[-recent:]
        learned = self.learner.model.reward(torch.from_numpy(self.store.obs[idx]),
                                            torch.from_numpy(self.store.action[idx])).cpu().numpy()
        true = self.ledger.reward[idx]
        if learned.std() == 0 or true.std() == 0:
            return math.nan
        return float(np.corrcoef(learned, true)[0, 1])

    def diagnostics(self) -> dict:
        return {**self.learner.diagnostics(), "reward_correlation": self.reward_correlation(), **self.timings}

    def summary(self) -> dict:
        return self.diagnostics()

    def save_outputs(self, run_dir: Path) -> None:
        torch.save(self.learner.model.state_dict(), run_dir / "reward_model.pt")

    def finished_note(self, summary: Mapping[str, Any]) -> str:
        note = (f"; {summary['labels']} labels trained on of {summary['feedback_asked']} queries asked "
                f"in {summary['rounds']} rounds")
        return note + (f" ({self.labels_note})" if self.labels_note else "")

    def close(self) -> None:
        self.teacher.close()
        if self.session is not None:  # a person's viewer and clip renderer stop with the run
            self.session.close()

    def state_dict(self) -> dict:
        return {"learner": self.learner.state_dict(), "ledger": self.ledger.state_dict(),
                "state_entropy": self.bonus.bonus.stats.state_dict(), "timings": dict(self.timings),
                "waiting_since": self.waiting_since}

    def load_state_dict(self, state: dict, order: np.ndarray | None = None) -> None:
        self.learner.load_state_dict(state["learner"])
        self.ledger.load_state_dict(state["ledger"], order)
        self.bonus.bonus.stats.load_state_dict(state["state_entropy"])
        self.timings.update(state.get("timings", {}))
        self.waiting_since = state.get("waiting_since")  # absent in snapshots from before 2026-12-05: nothing waits


def preference_mode(cfg: Mapping[str, Any]) -> bool:
    """True when a teacher is configured (``teacher.name`` other than ``none``)."""
    return cfg.get("teacher", {}).get("name", "none") != "none"


def make_feedback(cfg: Mapping[str, Any], store: EpisodeStore, n_envs: int, spec: EnvSpec, device: torch.device,
                  precision: str, rng: np.random.Generator, run_dir: Path, say: Callable[[str], None],
                  log_round: Callable[[dict], None]) -> EnvFeedback:
    """``EnvFeedback`` for ``teacher.name: none``, else ``PreferenceFeedback`` (``cfg`` as the run resolved it)."""
    if not preference_mode(cfg):
        if (cfg.get("reward") or {}).get("bonus", "none") != "none":
            raise ConfigError("reward.bonus", f"got {cfg['reward']['bonus']!r}; a bonus on the learned reward needs "
                                              "a teacher (teacher=none learns from the env's reward): use none")
        return EnvFeedback(cfg)
    session = None
    if cfg["teacher"]["name"] == "human":  # the run starts what a person needs beside the label store
        from pbrl.human.session import LabelingSession
        from pbrl.human.teacher import segment_a_person_can_judge

        cfg = segment_a_person_can_judge(cfg, spec, say)
        session = LabelingSession(cfg["teacher"], run_dir, spec.env_id, cfg["env"].get("kwargs"), int(cfg["seed"]),
                                  cfg.get("instruction"), say)
    if int(cfg["feedback"]["segment"]) > spec.max_episode_steps:
        raise ConfigError("feedback.segment", f"got {cfg['feedback']['segment']}; no {spec.env_id} episode is "
                                              f"longer than {spec.max_episode_steps} steps")
    try:
        return PreferenceFeedback(cfg, store, n_envs, spec, device, precision, rng, run_dir, say, log_round, session)
    except BaseException:
        if session is not None:
            session.close()
        raise
