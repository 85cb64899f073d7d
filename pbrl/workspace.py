"""The run: N training envs, an agent, the episode store and the reward side; evaluation and snapshots.

With ``teacher.name: none`` the agent learns from the environment's reward. With a teacher the run
is PEBBLE (Lee et al. 2021) for any agent: seed steps, pretraining on the state-entropy bonus,
feedback rounds on schedule, learning from the learned reward (pbrl/preference/). In that mode the
env's reward goes only to the teacher's ledger: the agent's side sees NaN.

Each step: the agent acts on the envs' observations (randomly while seeding), the step goes into
the episode store (the query pool) and to the agent, the reward side runs a due round, and the
agent learns from the current reward source. The loop never asks which agent or teacher it runs.

A ``Workspace`` owns one run directory. ``train()`` first looks there: a ``summary.json`` that
covers the requested steps means the run is finished (return at once); a ``snapshot.pt`` means
it was interrupted (restore everything and carry on). A resumed run starts fresh episodes; every
other piece of state (networks, optimisers, buffers, RNGs, counters, logged rows) is restored.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from pbrl.agents import Transitions, make_agent
from pbrl.buffers.episodes import EpisodeStore, RunningEpisodes
from pbrl.common.logger import Logger, write_config
from pbrl.common.precision import resolve_precision
from pbrl.common.utils import resolve_threads, rng_state, select_device, set_rng_state, set_seed
from pbrl.envs import make_env, spec_of
from pbrl.envs.suites import task_name
from pbrl.envs.vector import TrainEnvs
from pbrl.errors import ConfigError
from pbrl.evaluation import Evaluator
from pbrl.lifecycle import (RunClock, RunRecord, StopSignals, finished_summary, load_snapshot_file, previous_snapshot,
                            progress_bar, run_logger, save_snapshot_file)
from pbrl.preference import make_feedback
from pbrl.preference.schedule import crossed
from pbrl.run_config import check_resume, train_kwargs, validate
from pbrl.summary import write_summary


class Workspace:
    """One training run in ``run_dir`` configured by ``cfg`` (the composed hydra config as a dict)."""

    def __init__(self, cfg: Mapping[str, Any], run_dir: str | Path, parallel_jobs: int = 1,
                 record: RunRecord | None = None):
        validate(cfg)
        self.cfg, self.run_dir, self.record = cfg, Path(run_dir), record
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.snapshot_path, self.summary_path = self.run_dir / "snapshot.pt", self.run_dir / "summary.json"
        self.say = run_logger(self.run_dir / "train.log")
        self.device = select_device(str(cfg["device"]))
        self.threads = resolve_threads(cfg["threads"], parallel_jobs)
        torch.set_num_threads(self.threads)
        self.precision, why = resolve_precision(cfg["precision"], self.device)  # fp32 or bf16, as the hardware runs it
        self.say(why, error=why.startswith("warning"))
        self.rng = set_seed(cfg["seed"])

        env_cfg = cfg["env"]
        repeat = env_cfg.get("action_repeat", 1)
        probe = make_env(env_cfg["id"], train_kwargs(env_cfg), env_cfg.get("max_episode_steps"), action_repeat=repeat)
        self.spec = spec_of(probe, env_cfg["id"])
        self.task = task_name(env_cfg["id"], env_cfg.get("kwargs"))
        probe.close()
        if self.spec.max_episode_steps is None:
            raise ConfigError("env.max_episode_steps", f"{env_cfg['id']} registers no time limit; set one, "
                                                       "e.g. env.max_episode_steps=1000")
        self.agent = make_agent(cfg["agent"], self.spec.obs_dim, self.spec.action_dim, self.device, self.precision,
                                steps=int(cfg["steps"]), buffer_size=int(cfg["buffer_size"]))
        self.n_envs = self.agent.n_envs
        self.store = EpisodeStore(min(int(cfg["buffer_size"]), int(cfg["steps"])), self.spec.obs_dim,
                                  self.spec.action_dim, self.spec.sim_state_dim)
        self.feedback = make_feedback(cfg, self.store, self.n_envs, self.spec, self.device, self.precision, self.rng,
                                      self.run_dir, self.say, lambda row: self.logger.log_round(row))
        self.cfg = cfg = self.feedback.cfg  # a person's teacher may lengthen feedback.segment
        write_config(self.run_dir, cfg)
        self.envs = TrainEnvs(env_cfg["id"], train_kwargs(env_cfg), env_cfg.get("max_episode_steps"), self.n_envs,
                              cfg["agent"].get("vector_env", "sync"), self.rng, self.spec.sim_state_dim, repeat)
        self.evaluator = Evaluator(cfg, self.run_dir, self.say)

        self.step = 0  # environment steps taken (all envs together)
        self.episodes = RunningEpisodes(self.n_envs)
        self.clock = RunClock()  # wall, training and CPU seconds spent in train(), summed over resumes

    # ------------------------------------------------------------------------------- training
    def train(self) -> dict:
        """Run (or resume, or skip if finished) the whole training; return the summary."""
        try:
            return self._train()
        finally:
            self.feedback.close()  # a person's viewer and clip renderer stop with the run
            self.envs.close()
            self.evaluator.close()  # its GL context goes before the interpreter's teardown

    def _train(self) -> dict:
        done = finished_summary(self.run_dir, self.cfg["steps"])
        if done is not None:
            self.say(f"{self.run_dir} already finished ({done['env_steps']} steps); nothing to do")
            return done
        snapshot = load_snapshot_file(self.snapshot_path, self.say)
        self.logger = Logger(self.run_dir, self.cfg, tensorboard=self.cfg["logger"]["tensorboard"],
                             wandb=self.cfg["logger"]["wandb"], resume_step=snapshot["step"] if snapshot else 0)
        if snapshot is not None:
            self.load_snapshot(snapshot)
            self.say(f"resumed {self.run_dir} at step {self.step}")
        steps = self.cfg["steps"]
        pbar = progress_bar(steps, self.step, f"{self.task} seed {self.cfg['seed']}", self.cfg["progress"])
        self.clock.restart()
        self._tick = (time.perf_counter(), self.step)  # (time, step) of the last metrics row
        with StopSignals(self.say) as stop:
            while self.step < steps:
                self._train_step(pbar, steps)
                if stop.requested is not None and self.step < steps:  # preemption, a time limit, Ctrl-C
                    pbar.close()
                    self._stop(stop)
        pbar.close()
        self.clock.accumulate()
        summary = write_summary(self.summary_path, self._summary_fields(), self.logger.eval_rows,
                                self.feedback.summary())
        torch.save(self.agent.state_dict(), self.run_dir / "agent.pt")
        self.feedback.save_outputs(self.run_dir)
        if not self.cfg["snapshot"]["keep"]:
            self.snapshot_path.unlink(missing_ok=True)
        previous_snapshot(self.snapshot_path).unlink(missing_ok=True)
        self.logger.close()
        final = summary.get("final_eval_return")
        self.say(f"finished {self.run_dir}: {summary['env_steps']} steps in {summary['wall_time_s'] / 60:.1f} min "
                 f"({summary['steps_per_s']:.0f} steps/s), final eval return "
                 + ("n/a" if final is None else f"{final:.1f}") + self.feedback.finished_note(summary))
        return summary

    def _stop(self, stop: StopSignals) -> None:
        """Snapshot, note the signal in run.json, close the sinks; then hand the signal over (submitit
        requeues the job there) or raise Preempted. Nothing after the snapshot step is lost."""
        self.save_snapshot()
        if self.record is not None:
            self.record.update(signal=signal.Signals(stop.requested).name, env_step=self.step)
        self.logger.close()
        self.say(f"stopped at step {self.step}; rerun the same command to resume from {self.snapshot_path.name}")
        stop.hand_over(self.step)

    def _train_step(self, pbar, steps: int) -> None:
        """One step of every env, the reward side's due work, a learning step; evaluate and snapshot on schedule."""
        prev = self.step
        episode_return = self._collect_step(random_action=self.feedback.phase(prev).acts_randomly)
        if episode_return is not None:
            pbar.set_postfix_str(f"return {episode_return:.1f}", refresh=False)
        self.feedback.after_step(prev, self.step, self.agent)
        if self.feedback.phase(self.step).learns:
            self.agent.learn(self.feedback.reward(self.step))
        if crossed(prev, self.step, self.cfg["eval"]["every"]) or self.step >= steps:
            row = self._evaluate_and_log(final=self.step >= steps)
            pbar.set_postfix_str(f"eval {row['eval_return_mean']:.1f}", refresh=False)
        if crossed(prev, self.step, self.cfg["snapshot"]["every"]) and self.step < steps:
            self.save_snapshot()
        pbar.update(self.step - prev)

    def _collect_step(self, random_action: bool) -> float | None:
        """One step of every env into the episode store and the agent; the return of an episode it ended, if any."""
        episodes = self.episodes
        episodes.start(self.envs.begin())
        obs = self.envs.obs
        if random_action:
            action = self.rng.uniform(-1.0, 1.0, (self.n_envs, self.spec.action_dim)).astype(np.float32)
        else:
            action = self.agent.act(obs)
        rows = self.store.add(obs, action, self.envs.sim_state, episodes.id, episodes.length)
        next_obs, env_reward, terminated, truncated = self.envs.step(action)
        ended = terminated | truncated
        env_reward = self.feedback.record(rows, env_reward, ended)  # NaN with a teacher: the true one is its ledger's
        source = self.feedback.reward(self.step)
        if source.from_env or self.agent.takes_step_rewards:
            reward = source.step_reward(obs, action, env_reward)
        else:  # the agent asks the source itself (PPO): the episode's learned return is computed at its end
            reward = np.full(self.n_envs, np.nan, np.float32)
        self.agent.observe(Transitions(obs, action, reward, next_obs, terminated, truncated))
        # a per-batch source (the k-NN bonus, RUNE) stores 0 for each step: its episode's learned return is not their
        # sum (NaN asks the feedback for the model's return over the stored episode instead)
        episodes.step(np.full_like(reward, np.nan) if source.per_batch else reward)
        self.step += self.n_envs
        last = None
        for i in np.flatnonzero(ended):
            row = {"env_step": self.step, "episode": int(episodes.id[i]), "length": int(episodes.length[i]),
                   **self.feedback.episode_row(i, float(episodes.agent_return[i]), int(episodes.id[i]))}
            self.logger.log_episode(row)
            episodes.ended += 1
            last = row["return"]
        return last

    def _evaluate_and_log(self, final: bool) -> dict:
        """Evaluate, then write one metrics row; steps/s there counts training time since the last row."""
        started = time.perf_counter()
        last_time, last_step = self._tick
        row = self.evaluator.evaluate(self.agent, self.step, self.feedback.learned_return, final=final)
        row["steps_per_s"] = (self.step - last_step) / max(started - last_time, 1e-9)
        self.clock.add_eval(time.perf_counter() - started)
        row["wall_time_s"] = self.clock.wall_now()
        row.update({f"train_{k}": v for k, v in self.agent.metrics().items()} if self.agent.num_updates else {})
        recent = [r["return"] for r in self.logger.episode_rows[-10:]]
        if recent:
            row["train_return_last10"] = float(np.mean(recent))
        row["episodes"] = self.episodes.ended
        row.update(self.feedback.diagnostics())
        self.logger.log_eval(row)
        self._tick = (time.perf_counter(), self.step)
        return row

    # ---------------------------------------------------------------------- snapshot / summary
    def save_snapshot(self) -> None:
        """Write everything needed to resume, atomically (a kill mid-write leaves the old snapshot)."""
        self.clock.accumulate()
        state = {"config": dict(self.cfg), "step": self.step, **self.episodes.state_dict(), **self.clock.state_dict(),
                 "agent": self.agent.state_dict(), "store": self.store.state_dict(), "rng": rng_state(self.rng),
                 "logger": self.logger.state_dict(), "feedback": self.feedback.state_dict()}
        save_snapshot_file(state, self.snapshot_path, keep_previous=self.cfg["snapshot"].get("previous", True))
        if self.record is not None:
            self.record.update(env_step=self.step)

    def load_snapshot(self, state: dict | None = None) -> None:
        """Restore the state save_snapshot wrote (read from disk unless given); the next step starts new episodes."""
        if state is None:
            state = load_snapshot_file(self.snapshot_path, self.say)
        if "store" not in state:  # written before the episode store existed (pbrl before issue 15)
            raise ConfigError("snapshot", f"{self.snapshot_path} was written by an older pbrl and cannot be resumed "
                                          "by this one; rerun in a new run directory")
        check_resume(state["config"], self.cfg, self.run_dir, self.say)
        self.agent.load_state_dict(state["agent"])
        order = self.store.load_state_dict(state["store"])
        set_rng_state(state["rng"], self.rng)
        self.logger.load_state_dict(state["logger"])
        self.feedback.load_state_dict(state["feedback"], order)
        self.step = state["step"]
        self.episodes.load_state_dict(state)
        self.clock.load_state_dict(state)
        self.envs.restart()

    def _summary_fields(self) -> dict:
        """What summary.json says about this run besides its evaluations and the reward side."""
        return {"env_id": self.spec.env_id, "task": self.task, "seed": self.cfg["seed"], "env_steps": self.step,
                "wall_time_s": self.clock.wall, "steps_per_s": self.step / max(self.clock.wall, 1e-9),
                "train_steps_per_s": self.step / max(self.clock.train, 1e-9), "cpu_time_s": self.clock.cpu,
                "agent": self.agent.cfg.name,
                "n_envs": self.n_envs, "precision": self.cfg["precision"], "precision_used": self.precision,
                "device": str(self.device), "threads": self.threads,
                "teacher": self.cfg.get("teacher", {}).get("name", "none")}
