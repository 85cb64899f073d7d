"""The run: seed steps, pretraining, feedback rounds, training, evaluation and snapshots; resumes by itself.

With ``teacher.name: none`` the agent learns from the environment's reward (plain SAC). With a
teacher the run is PEBBLE (Lee et al. 2021): after the seed steps the agent pretrains on the
state-entropy bonus for ``pretrain.steps``; then the first feedback round labels uniformly chosen
queries, the reward model is trained, the whole buffer is relabelled, the critic is reset and
``feedback.reset_updates`` extra updates follow; then every ``feedback.num_interact`` steps another
round (and a relabel) until ``feedback.max_feedback`` queries have been asked. In this mode the
training env hands the agent NaN rewards: the true reward goes only to the teacher's ledger.

A ``Workspace`` owns one run directory. ``train()`` first looks there: a ``summary.json`` that
covers the requested steps means the run is finished (return at once); a ``snapshot.pt`` means
it was interrupted (restore everything and carry on). A resumed run starts a fresh episode; every
other piece of state (networks, optimisers, buffer, RNGs, counters, logged rows) is restored.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

import pbrl
from pbrl.agents import make_agent
from pbrl.buffers.replay import ReplayBuffer
from pbrl.common.logger import Logger
from pbrl.common.precision import PRECISIONS, resolve_precision
from pbrl.common.schedule import Every, Until
from pbrl.common.utils import resolve_threads, rng_state, select_device, set_rng_state, set_seed
from pbrl.envs import get_sim_state, make_env, spec_of
from pbrl.envs.flips import flip_metrics
from pbrl.envs.render import FrameRenderer, frame_stride, write_mp4
from pbrl.errors import ConfigError, check_choice, check_int
from pbrl.intrinsic.state_entropy import StateEntropy
from pbrl.preference import PreferenceLearner, preference_mode
from pbrl.teachers import RewardLedger

# settings a resumed run may change: how it runs and logs, and how long, not what it learns
RESUMABLE_CHANGES = ("steps", "device", "threads", "progress", "logger", "snapshot", "tag",
                     "reward_model.relabel_batch", "teacher.serve", "teacher.host", "teacher.port",
                     "teacher.instruction", "teacher.repeat_fraction", "teacher.repeat_gap", "teacher.undo_grace_s",
                     "teacher.clip")  # keys or key prefixes; relabel chunking and how a person's clips look change no result
VIDEO_MODES = ("none", "last", "all")
EVAL_METRICS = ("flips",)  # extra evaluation metrics from the simulator state (pbrl/envs/flips.py)


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the top-level settings, naming the field and what is allowed on error."""
    check_int("seed", cfg["seed"], minimum=0)
    check_int("steps", cfg["steps"], minimum=1)
    check_int("seed_steps", cfg["seed_steps"], minimum=0)
    check_int("buffer_size", cfg["buffer_size"], minimum=1)
    check_choice("precision", cfg["precision"], PRECISIONS)
    check_int("eval.every", cfg["eval"]["every"], minimum=0)
    check_int("eval.episodes", cfg["eval"]["episodes"], minimum=1)
    check_choice("eval.video", cfg["eval"]["video"], VIDEO_MODES)
    metrics = cfg["eval"].get("metrics", [])
    if not isinstance(metrics, list) or any(m not in EVAL_METRICS for m in metrics):
        raise ConfigError("eval.metrics", f"got {metrics!r}; allowed: a list of {', '.join(EVAL_METRICS)}")
    if "flips" in metrics and not cfg["env"]["id"].split("/")[-1].startswith(("Hopper", "Walker2d", "HalfCheetah")):
        raise ConfigError("eval.metrics", f"flips reads a planar body's pitch (Hopper, Walker2d, HalfCheetah), "
                                          f"not {cfg['env']['id']}")
    check_int("snapshot.every", cfg["snapshot"]["every"], minimum=0)
    if not isinstance(cfg["env"].get("terminate", True), bool):
        raise ConfigError("env.terminate", f"got {cfg['env']['terminate']!r}; allowed: true, false")
    limit = cfg["env"].get("max_episode_steps")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError("env.max_episode_steps", f"got {limit!r}; allowed: null (the env's own limit) or an integer > 0")


def _train_kwargs(env_cfg: Mapping[str, Any]) -> Any:
    """gymnasium.make kwargs of the training env: ``env.terminate=false`` adds terminate_when_unhealthy=False.

    Evaluation always uses the env as registered (plus ``env.kwargs``), so eval returns compare
    with plain SAC's whatever the training env does.
    """
    kwargs = env_cfg.get("kwargs")
    if env_cfg.get("terminate", True):
        return kwargs  # as given; make_env validates it
    if "terminate_when_unhealthy" not in _env_parameters(env_cfg["id"]):
        raise ConfigError("env.terminate", f"{env_cfg['id']} has no terminate_when_unhealthy switch; "
                                           "env.terminate=false works for Hopper, Walker2d, Ant, Humanoid(Standup)")
    return {**(kwargs if isinstance(kwargs, Mapping) else {}), "terminate_when_unhealthy": False}


def _has_unhealthy_termination(env_cfg: Mapping[str, Any]) -> bool:
    """Whether the env ends episodes when the body falls (it has a ``terminate_when_unhealthy`` switch left on)."""
    kwargs = env_cfg.get("kwargs") or {}
    if kwargs.get("terminate_when_unhealthy") is False:
        return False
    return "terminate_when_unhealthy" in _env_parameters(env_cfg["id"])


def _env_parameters(env_id: str) -> set[str]:
    """The keyword arguments the env's class takes (empty when its signature cannot be read)."""
    import inspect

    import gymnasium

    entry = gymnasium.spec(env_id).entry_point
    env_cls = gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    try:
        return set(inspect.signature(env_cls).parameters)
    except (TypeError, ValueError):
        return set()


def _resumable(key: str) -> bool:
    """May ``key`` (dotted) differ between a snapshot and the run that resumes it?"""
    return any(key == r or key.startswith(r + ".") for r in RESUMABLE_CHANGES)


def _flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"tau": 0.005}}`` -> ``{"agent.tau": 0.005}``."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(pbrl.__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class Workspace:
    """One training run in ``run_dir`` configured by ``cfg`` (the composed hydra config as a dict)."""

    def __init__(self, cfg: Mapping[str, Any], run_dir: str | Path, parallel_jobs: int = 1):
        validate(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / "train.log"
        self.device = select_device(str(cfg["device"]))
        self.threads = resolve_threads(cfg["threads"], parallel_jobs)
        torch.set_num_threads(self.threads)
        self.precision, why = resolve_precision(cfg["precision"], self.device)  # fp32 or bf16, as the hardware runs it
        self.say(why, error=why.startswith("warning"))
        self.rng = set_seed(cfg["seed"])

        env_cfg = cfg["env"]
        self.env = make_env(env_cfg["id"], _train_kwargs(env_cfg), env_cfg.get("max_episode_steps"))
        self.eval_env = make_env(env_cfg["id"], env_cfg.get("kwargs"), env_cfg.get("max_episode_steps"),
                                 render_mode="rgb_array" if cfg["eval"]["video"] != "none" else None)
        self.spec = spec_of(self.env, env_cfg["id"])
        if self.spec.max_episode_steps is None:
            raise ConfigError("env.max_episode_steps", f"{env_cfg['id']} registers no time limit; set one, "
                                                       "e.g. env.max_episode_steps=1000")
        self.agent = make_agent(cfg["agent"], self.spec.obs_dim, self.spec.action_dim, self.device, self.precision)
        capacity = min(int(cfg["buffer_size"]), int(cfg["steps"]))
        self.buffer = ReplayBuffer(capacity, self.spec.obs_dim, self.spec.action_dim, self.spec.sim_state_dim,
                                   self.device)
        self.preference = preference_mode(cfg)
        if self.preference and cfg["teacher"].get("name") == "human":
            self.cfg = cfg = self._segments_a_person_can_judge(cfg)
        self._write_config()
        if self.preference and int(cfg["feedback"]["segment"]) > self.spec.max_episode_steps:
            raise ConfigError("feedback.segment", f"got {cfg['feedback']['segment']}; no {env_cfg['id']} episode is "
                                                  f"longer than {self.spec.max_episode_steps} steps")
        self.ledger: RewardLedger | None = None
        self.learner: PreferenceLearner | None = None
        self.state_entropy: StateEntropy | None = None
        if self.preference:
            self.ledger = RewardLedger(capacity)
            self.env = self.ledger.wrap(self.env)  # from here on the agent's side sees NaN rewards
            self.learner = PreferenceLearner(cfg, self.spec.obs_dim, self.spec.action_dim, self.ledger,
                                             self.device, self.precision, self.rng, self.run_dir, log=self.say)
            self.state_entropy = StateEntropy(k=cfg["pretrain"]["k"], device=self.device)
            # pretraining ends and the first feedback round happens at this step
            self.first_round_step = cfg["seed_steps"] + cfg["pretrain"]["steps"]
            self._waiting_since: int | None = None  # step at which a due round began waiting for long-enough episodes
        self.timings = {"relabel_s": 0.0, "reward_rounds_s": 0.0}

        self.step = 0  # environment steps taken
        self.episode = 0  # training episodes started
        self.wall_time = 0.0  # seconds spent in train(), summed over resumes
        self.train_time = 0.0  # the same without evaluation
        self._obs: np.ndarray | None = None  # None: the next step starts a new episode
        self._episode_return, self._episode_length = 0.0, 0
        self._clock_start, self._eval_time = time.perf_counter(), 0.0  # restarted by train()
        self._renderer: FrameRenderer | None = None
        self._video_failed = False
        self._labels_note: str | None = None  # what became of a person's labels, from the teacher at the last step

    # ------------------------------------------------------------------------------ messages
    def say(self, message: str, error: bool = False) -> None:
        """One line for the person running this: on stdout (stderr if ``error``) and, timestamped, in ``train.log``."""
        print(f"pbrl: {message}", file=sys.stderr if error else sys.stdout, flush=True)
        with open(self.log_path, "a") as f:
            f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}\n")

    def _segments_a_person_can_judge(self, cfg: Mapping[str, Any]) -> Mapping[str, Any]:
        """The config with ``feedback.segment`` long enough for a clip of ``teacher.min_clip_s`` seconds.

        A 50-step Hopper segment lasts 0.4 s: too short for a person to judge (Christiano et al.
        showed 1-2 s clips). The clip plays in real time at the env's ``render_fps``. Not where
        training episodes end when the body falls (``env.terminate=true`` on Hopper, Walker2d, Ant,
        Humanoid): early episodes last a fraction of a second, no 1 s segment would fit, and the
        first round would wait for one forever; the run says so instead.
        """
        min_s = float(cfg["teacher"].get("min_clip_s", 1.0))
        fps = self.env.metadata.get("render_fps")
        segment = int(cfg["feedback"]["segment"])
        if not fps or not min_s or segment / fps >= min_s:
            return cfg
        longer = min(math.ceil(min_s * fps), self.spec.max_episode_steps)
        if cfg["env"].get("terminate", True) and _has_unhealthy_termination(cfg["env"]):
            self.say(f"teacher=human: clips show {segment / fps:.2f} s of {cfg['env']['id']} (feedback.segment="
                     f"{segment}): its training episodes end when the body falls, often sooner than "
                     f"{min_s:g} s; with env.terminate=false (as Christiano et al. trained) the segment "
                     f"would be raised to {longer} steps (teacher.min_clip_s)")
            return cfg
        self.say(f"teacher=human: feedback.segment {segment} -> {longer} steps, so that each clip shows "
                 f"{longer / fps:.2f} s of {cfg['env']['id']} (teacher.min_clip_s={min_s:g}; set it to 0 to keep {segment})")
        return {**cfg, "feedback": {**cfg["feedback"], "segment": longer}}

    def _write_config(self) -> None:
        """``config.yaml``: the resolved settings this run uses (pbrl-report groups runs by them)."""
        from omegaconf import OmegaConf

        (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(dict(self.cfg))))

    # ----------------------------------------------------------------------------------- paths
    @property
    def snapshot_path(self) -> Path:
        return self.run_dir / "snapshot.pt"

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "summary.json"

    def finished(self) -> dict | None:
        """The summary of this run directory if it already covers the requested steps."""
        if not self.summary_path.exists():
            return None
        summary = json.loads(self.summary_path.read_text())
        if summary.get("env_steps", 0) >= self.cfg["steps"]:
            return summary
        if not self.snapshot_path.exists():
            raise ConfigError("steps", f"{self.run_dir} holds a run finished at {summary.get('env_steps')} steps "
                                       f"and no snapshot to extend it to {self.cfg['steps']}; use a new run directory")
        return None

    # ------------------------------------------------------------------------------- training
    def train(self) -> dict:
        """Run (or resume, or skip if finished) the whole training; return the summary."""
        try:
            return self._train()
        finally:
            if self.learner is not None:
                self.learner.teacher.close()  # a person's viewer and clip renderer stop with the run

    def _train(self) -> dict:
        done = self.finished()
        if done is not None:
            self.say(f"{self.run_dir} already finished ({done['env_steps']} steps); nothing to do")
            return done
        snapshot = torch.load(self.snapshot_path, weights_only=False) if self.snapshot_path.exists() else None
        self.logger = Logger(self.run_dir, self.cfg, tensorboard=self.cfg["logger"]["tensorboard"],
                             wandb=self.cfg["logger"]["wandb"], resume_step=snapshot["step"] if snapshot else 0)
        if snapshot is not None:
            self.load_snapshot(snapshot)
            self.say(f"resumed {self.run_dir} at step {self.step}")

        cfg = self.cfg
        steps = cfg["steps"]
        seeding = Until(cfg["seed_steps"])
        eval_now = Every(cfg["eval"]["every"])
        snapshot_now = Every(cfg["snapshot"]["every"])
        pbar = self._progress_bar()
        self._clock_start, self._eval_time = time.perf_counter(), 0.0
        self._tick = (self._clock_start, self.step)  # (time, step) of the last metrics row

        while self.step < steps:
            # until the first round can be asked, act as in the seed steps (random, no updates)
            episode_return = self._collect_step(random_action=seeding(self.step) or self._awaiting_first_round())
            if episode_return is not None:
                pbar.set_postfix_str(f"return {episode_return:.1f}", refresh=False)
            if self.preference and (self._feedback_due() or self._awaiting_first_round()
                                    or self._waiting_since is not None):
                self._feedback_round_when_possible()
            if self.preference and self.step == steps:
                self._fold_in_late_labels()  # before the final evaluation, so its learned return sees them
                # from here on no answer could be used: the viewer says training has finished and takes no more
                self._labels_note = self.learner.teacher.finish()
            if self.preference and self.step % 500 == 0:
                self._tick_teacher()
            if not seeding(self.step) and not self._awaiting_first_round():
                # the state-entropy bonus until the reward model has been trained on labels (a person
                # answering asynchronously may take a while after the first round is asked)
                pretraining = self.preference and (self.step < self.first_round_step or not self.learner.trained)
                for _ in range(self.agent.cfg.updates_per_step):
                    self._update_agent(intrinsic=pretraining)
            if eval_now(self.step) or self.step == steps:
                row = self._evaluate_and_log(final=self.step == steps)
                pbar.set_postfix_str(f"eval {row['eval_return_mean']:.1f}", refresh=False)
            if snapshot_now(self.step) and self.step < steps:
                self.save_snapshot()
            pbar.update(1)
        pbar.close()
        self._accumulate_time()
        labels_note = self._labels_note if self.preference else None
        summary = self._write_summary()
        torch.save(self.agent.state_dict(), self.run_dir / "agent.pt")
        if self.preference:
            torch.save(self.learner.model.state_dict(), self.run_dir / "reward_model.pt")
        if self.snapshot_path.exists() and not cfg["snapshot"]["keep"]:
            self.snapshot_path.unlink()
        self.logger.close()
        self._say_finished(summary, labels_note)
        return summary

    def _say_finished(self, summary: Mapping[str, Any], labels_note: str | None) -> None:
        """The run's last line: where it is, how long it took, how it did, and what the labels came to."""
        final = summary.get("final_eval_return")
        line = (f"finished {self.run_dir}: {summary['env_steps']} steps in {summary['wall_time_s'] / 60:.1f} min "
                f"({summary['steps_per_s']:.0f} steps/s), final eval return "
                + ("n/a" if final is None else f"{final:.1f}"))
        if self.preference:
            line += (f"; {summary['labels']} labels trained on of {summary['feedback_asked']} queries asked "
                     f"in {summary['rounds']} rounds")
            if labels_note:
                line += f" ({labels_note})"
        self.say(line)

    def _tick_teacher(self) -> None:
        """Tell the teacher (a person's viewer) the step, and when the next round comes (None: no more)."""
        self.learner.teacher.tick(self.step, self.cfg["steps"], self._next_round_step())

    def _next_round_step(self) -> int | None:
        """The step of the next round; a round that waits for a long-enough episode is due now."""
        first, every = self.first_round_step, int(self.cfg["feedback"]["num_interact"])
        if self.learner.budget_left <= 0:
            return None
        if self._waiting_since is not None or self._awaiting_first_round():
            return self.step
        nxt = first if self.step < first else first + ((self.step - first) // every + 1) * every
        return nxt if nxt <= self.cfg["steps"] else None

    def _fold_in_late_labels(self) -> None:
        """The end of the run: answers given after the last round train the reward model once more.

        They come from a person labelling asynchronously, or from one who labelled while a stopped run
        was down. The agent does not train on that update (its training is over); the saved
        ``reward_model.pt`` and the final evaluation's learned return do, so no answer is left out.
        """
        if not self.learner.teacher.undelivered():
            return
        stats = self.learner.round(self.buffer, self.step, ask=False)
        self.timings["reward_rounds_s"] += stats["reward_round_s"]
        if not stats["trained"]:
            return
        stats["env_step"] = self.step
        self.logger.log_round(stats)
        self.say(f"final reward update at step {self.step}: {stats['new_labels']} labels arrived after the last "
                 f"round ({stats['labels']} in all), train acc {stats.get('reward_train_acc', math.nan):.3f}; "
                 "saved in reward_model.pt (the agent's training had ended)")

    def _update_agent(self, intrinsic: bool = False) -> None:
        """One agent update; during pretraining the reward is the state-entropy bonus of the batch's states."""
        batch = self.buffer.sample(self.agent.cfg.batch_size)
        if intrinsic:
            pool = self.buffer.observations()
            batch = batch._replace(reward=self.state_entropy(batch.obs, pool))
        self.agent.update(batch)

    def _feedback_due(self) -> bool:
        """PEBBLE's schedule: a round right after pretraining, then every num_interact steps while budget lasts."""
        if self.step < self.first_round_step or (self.step - self.first_round_step) % self.cfg["feedback"]["num_interact"]:
            return False
        return self.learner.wants_round()  # last: a person's teacher answers it from its database

    def _awaiting_first_round(self) -> bool:
        """The first round is due but has not been asked yet (no episode long enough for a segment)."""
        return bool(self.preference and self.learner.rounds == 0 and self.step >= self.first_round_step)

    def _feedback_round_when_possible(self) -> None:
        """Ask a due round now, or, if no stored episode holds a whole segment yet, as soon as one does.

        With termination, early episodes can all be shorter than a segment (a random Walker2d falls
        within ~20-40 steps). The round then waits (checked every ``segment`` steps); before the first
        round the agent keeps acting randomly without updates, so nothing trains on an untrained reward.
        A waiting first round survives a resume (it is derived from the step and the round count); a
        waiting later round does not, and the next scheduled one takes its place.
        """
        length, since = self.learner.length, self._waiting_since
        if since is not None and (self.step - since) % length:
            return
        if self.learner.can_ask(self.buffer):
            if since is not None:
                self.say(f"the round due at step {since} is asked at step {self.step}")
            self._waiting_since = None
            self._feedback_round()
        elif since is None:
            self._waiting_since = self.step
            self.say(f"feedback round due at step {self.step} waits: no stored episode (of the last "
                     f"{self.cfg['feedback']['last_episodes']}) holds {length} consecutive steps yet "
                     f"(feedback.segment={length}); the round is asked once one does")

    def _feedback_round(self) -> None:
        """Ask the teacher, train the reward model, relabel the buffer; after the first round, reset the critic."""
        first = not self.learner.trained
        stats = self.learner.round(self.buffer, self.step)
        self.timings["reward_rounds_s"] += stats["reward_round_s"]
        self._tick_teacher()  # the viewer learns at once when the next round comes
        if not stats["trained"]:  # an asynchronous teacher had no new labels yet
            if stats["asked_now"]:
                self.say(f"feedback round {self.learner.rounds} at step {self.step}: asked {stats['asked_now']} queries; "
                         f"{stats['labels']} labels so far, the reward model trains once new ones arrive")
            return
        stats["relabel_s"] = self.learner.relabel(self.buffer)
        self.timings["relabel_s"] += stats["relabel_s"]
        if first:  # PEBBLE: a fresh critic for the learned reward, then a few updates on the relabelled buffer
            self.agent.reset_critic()
            if self.cfg["pretrain"]["reset_actor"]:  # keep only the exploration data of pretraining
                self.agent.reset_actor()
            for _ in range(self.cfg["feedback"]["reset_updates"]):
                self._update_agent()
        stats["env_step"] = self.step
        self.logger.log_round(stats)
        self.say(f"feedback round {self.learner.rounds} at step {self.step}: {stats['labels']} labels, "
                 f"train acc {stats.get('reward_train_acc', math.nan):.3f} after {stats['reward_epochs']} epochs, "
                 f"{stats['reward_round_s'] + stats['relabel_s']:.1f}s")

    def _collect_step(self, random_action: bool) -> float | None:
        """One environment step into the buffer; returns the episode's return when the step ended it."""
        if self._obs is None:
            self._obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
            self._episode_return, self._episode_length = 0.0, 0
        obs = self._obs
        sim_state = get_sim_state(self.env) if self.spec.sim_state_dim else None
        if random_action:
            action = self.rng.uniform(-1.0, 1.0, self.spec.action_dim).astype(np.float32)
        else:
            action = self.agent.act(obs)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        if self.preference:  # reward is NaN here; store the learned one (overwritten at the next relabel)
            reward = self.learner.step_reward(obs, action)
        self.buffer.add(obs, action, reward, terminated, truncated, next_obs, self.episode, self._episode_length,
                        sim_state)
        if self.preference and self.ledger.pos != self.buffer.pos:
            raise RuntimeError("the reward ledger and the replay buffer are out of step")
        self._episode_return += float(reward)
        self._episode_length += 1
        self.step += 1
        self._obs = next_obs
        if not (terminated or truncated):
            return None
        row = {"env_step": self.step, "episode": self.episode, "length": self._episode_length}
        if self.preference:  # the true return (a diagnostic from the ledger) next to the learned one
            row["return"] = self.ledger.episode_returns[-1]
            row["learned_return"] = self._episode_return
        else:
            row["return"] = self._episode_return
        self.logger.log_episode(row)
        self.episode += 1
        self._obs = None
        return row["return"]

    def _evaluate_and_log(self, final: bool) -> dict:
        """Evaluate, then write one metrics row; steps/s there counts training time since the last row."""
        started = time.perf_counter()
        last_time, last_step = self._tick
        row = self.evaluate(final=final)
        row["steps_per_s"] = (self.step - last_step) / max(started - last_time, 1e-9)
        now = time.perf_counter()
        self._eval_time += now - started
        row["wall_time_s"] = self.wall_time + now - self._clock_start
        row.update(self._train_stats())
        self.logger.log_eval(row)
        self._tick = (time.perf_counter(), self.step)
        return row

    def _accumulate_time(self) -> None:
        """Move the time since the clock last started into the run's totals (kept in snapshots)."""
        now = time.perf_counter()
        self.wall_time += now - self._clock_start
        self.train_time += now - self._clock_start - self._eval_time
        self._clock_start, self._eval_time = now, 0.0

    def _progress_bar(self):
        from tqdm import tqdm

        interactive = sys.stderr.isatty()
        return tqdm(total=self.cfg["steps"], initial=self.step, unit="step", dynamic_ncols=True,
                    mininterval=0.5 if interactive else 30.0, disable=not self.cfg["progress"],
                    desc=f"{self.spec.env_id} seed {self.cfg['seed']}")

    def _train_stats(self) -> dict:
        stats = {f"train_{k}": v for k, v in self.agent.metrics().items()} if self.agent.num_updates else {}
        recent = [r["return"] for r in self.logger.episode_rows[-10:]]
        if recent:
            stats["train_return_last10"] = float(np.mean(recent))
        stats["episodes"] = self.episode
        if self.preference:
            stats.update(self.learner.diagnostics())
            stats["reward_correlation"] = self._reward_correlation()
            stats.update(self.timings)
        return stats

    def _reward_correlation(self, recent: int = 10000) -> float:
        """Pearson correlation of learned and true per-step reward over the newest ``recent`` transitions.

        A diagnostic only: the true rewards come from the teacher's ledger and go nowhere but the log.
        """
        if not self.learner.trained or self.buffer.size < 2:
            return math.nan
        idx = self.buffer.chronological()[-recent:]
        learned = self.learner.model.reward(torch.from_numpy(self.buffer.obs[idx]),
                                            torch.from_numpy(self.buffer.action[idx])).cpu().numpy()
        true = self.ledger.reward[idx]
        if learned.std() == 0 or true.std() == 0:
            return math.nan
        return float(np.corrcoef(learned, true)[0, 1])

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self, final: bool = False) -> dict:
        """Deterministic-policy return over ``eval.episodes`` episodes with fixed start seeds."""
        mode = self.cfg["eval"]["video"]
        record = mode == "all" or (mode == "last" and final)
        returns, learned, flips = [], [], []
        for i in range(self.cfg["eval"]["episodes"]):
            frames = [] if (record and i == 0) else None
            trajectory: list | None = [] if self.preference else None
            qpos: list | None = [] if "flips" in self.cfg["eval"]["metrics"] else None
            returns.append(self._eval_episode(seed=self.cfg["seed"] + 1_000_000 + i, frames=frames,
                                              trajectory=trajectory, qpos=qpos))
            if trajectory:
                learned.append(self._learned_return(trajectory))
            if qpos:
                flips.append(flip_metrics(np.stack(qpos)))
            if frames:
                self._save_video(frames)
        row = {"env_step": self.step, "eval_return_mean": float(np.mean(returns)),
               "eval_return_std": float(np.std(returns))}
        if learned:
            row["eval_learned_return_mean"] = float(np.mean(learned))
        if flips:  # backward turns per episode; share of episodes with a whole turn, and with a landed one
            row["eval_rotations_mean"] = float(np.mean([f["rotations"] for f in flips]))
            row["eval_flip_rate"] = float(np.mean([f["completed"] >= 1 for f in flips]))
            row["eval_landed_rate"] = float(np.mean([f["landed"] >= 1 for f in flips]))
            row["eval_landed_mean"] = float(np.mean([f["landed"] for f in flips]))
        return row

    def _learned_return(self, trajectory: list) -> float:
        """The reward model's return of one eval episode (NaN before the first feedback round)."""
        if not self.learner.trained:
            return math.nan
        obs = torch.as_tensor(np.stack([o for o, _ in trajectory]))
        action = torch.as_tensor(np.stack([a for _, a in trajectory]))
        return float(self.learner.model.reward(obs, action).sum())

    def _eval_episode(self, seed: int, frames: list | None, trajectory: list | None = None,
                      qpos: list | None = None) -> float:
        """One deterministic episode's return; fills ``frames``, ``trajectory`` (obs, action) and ``qpos`` if given."""
        obs, _ = self.eval_env.reset(seed=seed)
        if qpos is not None:
            qpos.append(self.eval_env.unwrapped.data.qpos.copy())
        stride = frame_stride(self.eval_env.metadata.get("render_fps"))
        total, t, done = 0.0, 0, False
        while not done:
            if frames is not None and t % stride == 0:
                self._grab_frame(frames)
            action = self.agent.act(obs, deterministic=True)
            if trajectory is not None:
                trajectory.append((obs, action))
            obs, reward, terminated, truncated, _ = self.eval_env.step(action)
            if qpos is not None:
                qpos.append(self.eval_env.unwrapped.data.qpos.copy())
            total += float(reward)
            t += 1
            done = terminated or truncated
        if frames is not None:
            self._grab_frame(frames)
        return total

    def _grab_frame(self, frames: list) -> None:
        if self._video_failed:
            return
        try:
            if self._renderer is None:
                self._renderer = FrameRenderer(self.eval_env)
            frames.append(self._renderer.render())
        except Exception as exc:  # rendering is optional: a missing GL library must not end a run
            self._video_failed = True
            frames.clear()
            self.say(f"warning: video disabled, rendering failed ({type(exc).__name__}: {exc}); "
                     "install libegl1 libgl1 libosmesa6 or set MUJOCO_GL", error=True)

    def _save_video(self, frames: list) -> None:
        fps = (self.eval_env.metadata.get("render_fps") or 30) / frame_stride(self.eval_env.metadata.get("render_fps"))
        try:
            write_mp4(self.run_dir / "videos" / f"eval_{self.step:08d}.mp4", frames, fps)
        except Exception as exc:
            self.say(f"warning: could not write video ({type(exc).__name__}: {exc})", error=True)

    # ---------------------------------------------------------------------- snapshot / summary
    def save_snapshot(self) -> None:
        """Write everything needed to resume, atomically (a kill mid-write leaves the old snapshot)."""
        self._accumulate_time()
        state = {"config": dict(self.cfg), "step": self.step, "episode": self.episode,
                 "mid_episode": self._obs is not None,
                 "wall_time": self.wall_time,
                 "train_time": self.train_time, "agent": self.agent.state_dict(), "buffer": self.buffer.state_dict(),
                 "rng": rng_state(self.rng), "logger": self.logger.state_dict(), "timings": dict(self.timings)}
        if self.preference:
            state.update(learner=self.learner.state_dict(), ledger=self.ledger.state_dict(),
                         state_entropy=self.state_entropy.stats.state_dict())
        tmp = self.snapshot_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.snapshot_path)

    def load_snapshot(self, state: dict | None = None) -> None:
        """Restore the state save_snapshot wrote (read from disk unless given); the next step starts a new episode."""
        if state is None:
            state = torch.load(self.snapshot_path, weights_only=False)
        old, new = _flatten(state["config"]), _flatten(self.cfg)
        changed = sorted(k for k in set(old) | set(new)
                         if not _resumable(k) and k in old and old.get(k) != new.get(k))
        added = sorted(set(new) - set(old))
        if added:  # settings newer than the snapshot (a newer pbrl): keep the run, say what it now uses
            self.say(f"note: {self.run_dir} was snapshotted before these settings existed; resuming with "
                     + ", ".join(f"{k}={new[k]!r}" for k in added))
        if changed:
            key = changed[0]
            raise ConfigError(key, f"{self.run_dir} holds a snapshot of a run with {key}={old.get(key)!r}; rerun "
                                   "with the same settings or use a new run directory")
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        set_rng_state(state["rng"], self.rng)
        self.logger.load_state_dict(state["logger"])
        self.timings.update(state.get("timings", {}))
        if self.preference:
            self.learner.load_state_dict(state["learner"])
            self.ledger.load_state_dict(state["ledger"])
            self.state_entropy.stats.load_state_dict(state["state_entropy"])
        # an episode cut off by the interruption keeps its id; the fresh episode gets the next one
        self.step, self.episode = state["step"], state["episode"] + int(state["mid_episode"])
        self.wall_time, self.train_time = state["wall_time"], state["train_time"]
        self._obs = None

    def _write_summary(self) -> dict:
        import gymnasium
        import mujoco

        evals = [r["eval_return_mean"] for r in self.logger.eval_rows]
        summary = {
            "env_id": self.spec.env_id, "seed": self.cfg["seed"], "env_steps": self.step,
            "final_eval_return": evals[-1] if evals else None, "best_eval_return": max(evals) if evals else None,
            "final_eval_return_std": self.logger.eval_rows[-1]["eval_return_std"] if evals else None,
            "wall_time_s": self.wall_time, "steps_per_s": self.step / max(self.wall_time, 1e-9),
            "train_steps_per_s": self.step / max(self.train_time, 1e-9), "agent": self.agent.cfg.name,
            "precision": self.cfg["precision"], "precision_used": self.precision, "device": str(self.device),
            "threads": self.threads,
            "pbrl_version": pbrl.__version__, "git_commit": _git_commit(), "torch_version": torch.__version__,
            "gymnasium_version": gymnasium.__version__, "mujoco_version": mujoco.__version__,
            "teacher": self.cfg.get("teacher", {}).get("name", "none"),
        }
        if self.preference:
            last = self.logger.eval_rows[-1] if self.logger.eval_rows else {}
            summary.update(self.learner.diagnostics())
            summary["final_eval_learned_return"] = last.get("eval_learned_return_mean")
            summary["reward_correlation"] = self._reward_correlation()
            summary.update(self.timings)
        if "flips" in self.cfg["eval"]["metrics"] and self.logger.eval_rows:
            last = self.logger.eval_rows[-1]
            summary.update({f"final_{k}": last[k] for k in ("eval_rotations_mean", "eval_flip_rate", "eval_landed_rate",
                                                             "eval_landed_mean")})
        # strict JSON: a metric that is not defined yet (NaN) is written as null
        summary = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}
        tmp = self.summary_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, self.summary_path)
        return summary
