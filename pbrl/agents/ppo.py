"""Proximal policy optimisation with the clipped objective (PPO-Clip, Schulman et al. 2017).

Defaults and details follow stable-baselines3's PPO so that the two can be compared at equal
hyperparameters: separate policy and value MLPs (64x64 tanh, orthogonal init), a state-independent
log-std, an unsquashed Gaussian whose actions are clipped to [-1, 1] only when handed to the env,
GAE(lambda), per-minibatch advantage normalisation, the value loss without the 0.5 factor, Adam with
eps 1e-5 and gradient-norm clipping. Optional observation and reward normalisation follow SB3's
``VecNormalize``.

Where this differs from SB3, on purpose:

- The rollout stores *raw* observations, actions and the true successor of every step. At the
  update the rewards are asked from the run's ``RewardSource`` on the whole rollout (the learned
  reward or the state-entropy bonus reach PPO this way; nothing needs relabelling), observations
  are normalised with the running statistics as they stand then, and values, next values and the
  old log-probabilities come from one batched no-grad pass. The first epoch's ratio is therefore
  exactly 1, and the uniform-random actions of the run's seed steps are valid rollout data.
- Time-limit truncation bootstraps from V(final observation) stored with the step, not from the
  reset observation (SB3 does the same through ``terminal_observation``).
- Reward normalisation updates the return statistics once per rollout with all of its discounted
  returns, then divides the rollout's rewards by that std (SB3: step by step while collecting).

``precision="bf16"`` runs the update's forward and backward passes under autocast with fp32 master
weights and fp32 output layers (as SAC); ``act`` always runs fp32. With 64-unit networks bf16 buys
little; fp32 is the default.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pbrl.agents.base import RewardChange, Transitions
from pbrl.agents.nets import fp32_output, mlp
from pbrl.agents.optim import Adam
from pbrl.errors import ConfigError, check_choice, check_int
from pbrl.reward.source import RewardSource

LOG_2PI = math.log(2 * math.pi)
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
VECTOR_ENVS = ("sync", "async")
ROLLOUT_KEYS = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")  # stored per step, [T, N, ...]
REWARD_CHUNK = 4096  # rollout rows per reward-source call: bounds the k-NN bonus's [rows, pool chunk] distances


@dataclass
class PPOConfig:
    """PPO hyperparameters (stable-baselines3's defaults); every field is documented in conf/agent/ppo.yaml."""

    name: str = "ppo"
    n_envs: int = 1
    vector_env: str = "sync"
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    lr: float = 3e-4
    anneal_lr: bool = False
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    anneal_clip_range: bool = False
    clip_range_vf: float | None = None
    normalize_advantage: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    hidden_dim: int = 64
    depth: int = 2
    activation: str = "tanh"
    log_std_init: float = 0.0
    ortho_init: bool = True
    normalize_obs: bool = False
    normalize_reward: bool = False
    clip_obs: float = 10.0
    clip_reward: float = 10.0

    def check(self) -> None:
        """Raise ConfigError naming the first invalid field (``agent.<field>``)."""
        for key in ("n_envs", "n_steps", "batch_size", "n_epochs", "hidden_dim", "depth"):
            check_int(f"agent.{key}", getattr(self, key), 1)
        check_choice("agent.vector_env", self.vector_env, VECTOR_ENVS)
        check_choice("agent.activation", self.activation, tuple(ACTIVATIONS))
        for key in ("anneal_lr", "anneal_clip_range", "normalize_advantage", "ortho_init", "normalize_obs",
                    "normalize_reward"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"agent.{key}", f"got {getattr(self, key)!r}; must be true or false")
        for key in ("lr", "clip_range", "max_grad_norm", "clip_obs", "clip_reward"):
            _check_number(key, getattr(self, key), " > 0", lambda v: v > 0)
        for key in ("clip_range_vf", "target_kl"):
            if getattr(self, key) is not None:
                _check_number(key, getattr(self, key), " > 0 or null (off)", lambda v: v > 0)
        for key in ("gamma", "gae_lambda"):
            _check_number(key, getattr(self, key), " in [0, 1]", lambda v: 0 <= v <= 1)
        for key in ("ent_coef", "vf_coef"):
            _check_number(key, getattr(self, key), " >= 0", lambda v: v >= 0)
        _check_number("log_std_init", self.log_std_init, "", lambda v: True)
        rollout = self.n_envs * self.n_steps
        if self.batch_size > rollout:
            raise ConfigError("agent.batch_size", f"got {self.batch_size}; must be <= n_envs * n_steps = {rollout} "
                                                  "(the rollout holds that many transitions)")
        if self.normalize_advantage and self.batch_size < 2:
            raise ConfigError("agent.batch_size", "got 1; must be >= 2 with normalize_advantage (a std of one value)")


def _check_number(key: str, value, bound: str, ok) -> None:
    """Raise ConfigError unless ``value`` is a finite number (not a bool) for which ``ok`` holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ConfigError(f"agent.{key}", f"got {value!r}; must be a number{bound}")


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        truncated: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation on ``[T, N]`` tensors; returns ``(advantages, returns)``.

    ``next_values[t]`` is V of step t's true successor, so a truncated step bootstraps from its
    final observation; ``delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t)``. The chain
    ``A_t = delta_t + gamma lam A_{t+1}`` is cut where the episode ended either way (the next row
    belongs to a new episode) and after the last row. ``returns = advantages + values``.
    """
    terminated, truncated = terminated.bool(), truncated.bool()
    deltas = rewards + gamma * (~terminated).to(rewards.dtype) * next_values - values
    carry = gamma * lam * (~(terminated | truncated)).to(rewards.dtype)  # [T, N]
    advantages = torch.empty_like(deltas)
    last = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        last = torch.addcmul(deltas[t], carry[t], last)
        advantages[t] = last
    return advantages, advantages + values


def clipped_surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                      clip_range: float) -> torch.Tensor:
    """PPO's clipped objective, negated to be minimised: ``-mean(min(rho A, clip(rho, 1-eps, 1+eps) A))``."""
    ratio = torch.exp(log_prob - old_log_prob)
    return -torch.min(ratio * advantages, ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * advantages).mean()


def _numpy(x) -> np.ndarray:
    """A snapshot's tensor as a numpy array."""
    return torch.as_tensor(x).cpu().numpy()


class RunningMeanStd:
    """Per-dimension running mean and variance (float64, parallel update), as SB3's VecNormalize keeps them."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, x: np.ndarray) -> None:
        """Merge the moments of ``x`` ``[B, *shape]``."""
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * (n / total)
        self.var = (self.var * self.count + batch_var * n + delta ** 2 * (self.count * n / total)) / total
        self.count = total

    def state_dict(self) -> dict:
        # tensors, not arrays: a snapshot then also loads with torch.load(weights_only=True)
        return {"mean": torch.tensor(self.mean, dtype=torch.float64),
                "var": torch.tensor(self.var, dtype=torch.float64), "count": float(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var = _numpy(state["mean"]).astype(np.float64), _numpy(state["var"]).astype(np.float64)
        self.count = float(state["count"])


class PPO:
    """The PPO agent: ``act``/``observe`` fill a rollout of ``n_steps`` x ``n_envs``; ``learn`` trains on it when full.

    ``total_steps`` (env steps of the whole run, all envs together, seed steps included) is the
    horizon of the linear learning-rate and clip-range annealing.
    """

    takes_step_rewards = False  # a learned source's rewards are asked for the whole rollout before each update

    def __init__(self, obs_dim: int, action_dim: int, cfg: PPOConfig, device: torch.device | str = "cpu",
                 precision: str = "fp32", total_steps: int = 1_000_000):
        cfg.check()
        self.cfg = cfg
        self.device = torch.device(device)
        self.precision = precision
        self.n_envs = cfg.n_envs
        self.total_steps = total_steps
        activation = ACTIVATIONS[cfg.activation]
        self.policy = mlp(obs_dim, cfg.hidden_dim, cfg.depth, action_dim, activation).to(self.device)
        self.value = mlp(obs_dim, cfg.hidden_dim, cfg.depth, 1, activation).to(self.device)
        if cfg.ortho_init:  # SB3: sqrt(2) for hidden layers, 0.01 for the action mean, 1 for the value
            for net, out_gain in ((self.policy, 0.01), (self.value, 1.0)):
                linears = [m for m in net if isinstance(m, nn.Linear)]
                for layer in linears:
                    nn.init.orthogonal_(layer.weight, gain=out_gain if layer is linears[-1] else math.sqrt(2))
                    nn.init.zeros_(layer.bias)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(cfg.log_std_init), device=self.device))
        # the slices share the modules: output layers run through fp32_output under autocast
        self.policy_body, self.value_body = self.policy[:-1], self.value[:-1]
        self._policy_layers = [(m.weight, m.bias) for m in self.policy if isinstance(m, nn.Linear)]  # for act
        self._activation = {"tanh": torch.tanh, "relu": torch.relu}[cfg.activation]
        self.params = [*self.policy.parameters(), *self.value.parameters(), self.log_std]
        if hasattr(torch, "_fused_adam_") and self.device.type in ("cpu", "cuda"):
            self.opt = Adam(self.params, lr=cfg.lr, eps=1e-5)  # torch's fused kernel, less per-call bookkeeping
        else:
            self.opt = torch.optim.Adam(self.params, lr=cfg.lr, eps=1e-5)
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.ret_rms = RunningMeanStd(())
        self.ret = np.zeros(cfg.n_envs, np.float64)  # discounted return so far per env (reward normalisation)

        # the rollout: raw data, preallocated; `pos` steps of every env are filled
        t, n = cfg.n_steps, cfg.n_envs
        self.obs = np.zeros((t, n, obs_dim), np.float32)
        self.actions = np.zeros((t, n, action_dim), np.float32)
        self.rewards = np.zeros((t, n), np.float32)
        self.next_obs = np.zeros((t, n, obs_dim), np.float32)
        self.terminated = np.zeros((t, n), bool)
        self.truncated = np.zeros((t, n), bool)
        self.pos = 0
        self._last_raw: np.ndarray | None = None  # the unclipped sample behind act's last answer
        self._last_clipped: np.ndarray | None = None

        self.env_steps = 0  # transitions observed (all envs together)
        self.num_updates = 0  # gradient steps (minibatches)
        self.num_iterations = 0  # PPO updates (rollouts trained on)
        self.reward_version = 0
        self._metrics: dict[str, torch.Tensor] = {}
        self._lr, self._clip_range = cfg.lr, cfg.clip_range

    # ------------------------------------------------------------------ acting and storing
    def _autocast(self):
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _normalize_np(self, obs: np.ndarray) -> np.ndarray:
        if not self.cfg.normalize_obs:
            return obs
        x = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        return np.clip(x, -self.cfg.clip_obs, self.cfg.clip_obs).astype(np.float32)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Actions in [-1, 1] for ``[obs_dim]`` or ``[N, obs_dim]`` raw observations (the mean if deterministic).

        Never changes the normalisation statistics (evaluation calls it too).
        """
        x = torch.as_tensor(self._normalize_np(np.asarray(obs, np.float32)), device=self.device)
        # the policy MLP as plain F.linear calls: nn.Module's call machinery is ~40 % of this tiny forward
        for weight, bias in self._policy_layers[:-1]:
            x = self._activation(F.linear(x, weight, bias))
        mean = F.linear(x, *self._policy_layers[-1])
        action = mean if deterministic else torch.addcmul(mean, torch.randn_like(mean), self.log_std.exp())
        self._last_raw, self._last_clipped = action.cpu().numpy(), action.clamp(-1.0, 1.0).cpu().numpy()
        return self._last_clipped

    def _raw_action(self, action: np.ndarray) -> np.ndarray:
        """The unclipped sample if ``action`` is act's last answer, else ``action`` itself (e.g. random seed steps)."""
        clipped = self._last_clipped
        if clipped is not None and clipped.size == action.size and (
                clipped is action or np.array_equal(clipped.reshape(action.shape), action)):
            return self._last_raw.reshape(action.shape)
        return action

    def observe(self, step: Transitions) -> None:
        """Append one step of all envs to the rollout and update the running observation statistics.

        A rollout that is already full (learn was not called, as during the run's seed steps) is
        dropped and a new one starts with this step.
        """
        if self.pos == self.cfg.n_steps:
            self.pos = 0
        t = self.pos
        self.obs[t] = step.obs
        self.actions[t] = self._raw_action(np.asarray(step.action))
        self.rewards[t] = step.reward
        self.next_obs[t] = step.next_obs
        self.terminated[t] = step.terminated
        self.truncated[t] = step.truncated
        self.pos += 1
        self.env_steps += self.n_envs
        if self.cfg.normalize_obs:
            self.obs_rms.update(np.asarray(step.obs, np.float64))

    def reward_changed(self, change: RewardChange) -> None:
        """Nothing to relabel: rewards are asked from the source right before each update."""
        self.reward_version = change.reward.version

    # ------------------------------------------------------------------ the update
    def learn(self, reward: RewardSource) -> None:
        """One PPO update on the rollout if it is full (then a new rollout starts), else nothing."""
        if self.pos < self.cfg.n_steps:
            return
        self.update(reward)
        self.pos = 0

    def _policy_log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) ``[B]`` of the diagonal Gaussian (unsquashed: the stored actions are the raw samples)."""
        mean = fp32_output(self.policy[-1], self.policy_body(obs))
        z = (actions - mean) * torch.exp(-self.log_std)
        return -0.5 * z.pow(2).sum(-1) - (self.log_std.sum() + 0.5 * LOG_2PI * actions.shape[-1])

    def _values(self, obs: torch.Tensor) -> torch.Tensor:
        return fp32_output(self.value[-1], self.value_body(obs)).squeeze(-1).float()

    def _normalize(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.cfg.normalize_obs:
            return obs
        mean = torch.as_tensor(self.obs_rms.mean, dtype=torch.float32, device=self.device)
        std = torch.as_tensor(np.sqrt(self.obs_rms.var + 1e-8), dtype=torch.float32, device=self.device)
        return ((obs - mean) / std).clamp(-self.cfg.clip_obs, self.cfg.clip_obs)

    @torch.no_grad()
    def _rollout_rewards(self, reward: RewardSource, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[T, N]`` rewards: the stored env rewards, or the source's on the whole rollout now."""
        if reward.from_env:
            return torch.as_tensor(self.rewards, device=self.device)
        obs, actions = obs.reshape(-1, obs.shape[-1]), actions.reshape(-1, actions.shape[-1])
        out = [reward(obs[i:i + REWARD_CHUNK], actions[i:i + REWARD_CHUNK]).float().to(self.device)
               for i in range(0, obs.shape[0], REWARD_CHUNK)]
        return torch.cat(out).reshape(self.cfg.n_steps, self.n_envs)

    def _scale_rewards(self, rewards: torch.Tensor, done: np.ndarray) -> torch.Tensor:
        """Divide by the running std of the discounted return (updated with this rollout's returns), then clip."""
        r = rewards.cpu().double().numpy()
        returns = np.empty_like(r)
        ret = self.ret
        for t in range(len(r)):
            ret = ret * self.cfg.gamma + r[t]
            returns[t] = ret
            ret = np.where(done[t], 0.0, ret)  # a new episode starts its return afresh
        self.ret = ret
        self.ret_rms.update(returns.reshape(-1))
        scaled = rewards / float(np.sqrt(self.ret_rms.var + 1e-8))
        return scaled.clamp(-self.cfg.clip_reward, self.cfg.clip_reward)

    def _set_lr(self, lr: float) -> None:
        if isinstance(self.opt, Adam):
            self.opt.lr = lr
        else:
            for group in self.opt.param_groups:
                group["lr"] = lr

    def _prepare(self, reward: RewardSource) -> tuple[torch.Tensor, ...]:
        """The rollout flattened to ``[T*N, ...]``: normalised obs, raw actions, old log-probs, values, GAE.

        Rewards come from ``reward`` now; observations are normalised with the statistics as they
        stand (frozen for the whole update); values, next values and old log-probabilities come
        from one batched pass of the current networks.
        """
        cfg, t, n = self.cfg, self.cfg.n_steps, self.n_envs
        obs = torch.as_tensor(self.obs, device=self.device)  # [T, N, obs_dim] raw
        actions = torch.as_tensor(self.actions, device=self.device)  # [T, N, action_dim] raw samples
        rewards = self._rollout_rewards(reward, obs, actions)  # [T, N]
        if cfg.normalize_reward:
            rewards = self._scale_rewards(rewards, self.terminated | self.truncated)
        obs = self._normalize(obs.reshape(t * n, -1))
        next_obs = self._normalize(torch.as_tensor(self.next_obs, device=self.device).reshape(t * n, -1))
        actions = actions.reshape(t * n, -1)
        with torch.no_grad(), self._autocast():
            values, next_values = self._values(torch.cat([obs, next_obs])).reshape(2, t, n)
            old_log_prob = self._policy_log_prob(obs, actions).float()  # [T*N]
        terminated = torch.as_tensor(self.terminated, device=self.device)
        truncated = torch.as_tensor(self.truncated, device=self.device)
        advantages, returns = gae(rewards, values, next_values, terminated, truncated, cfg.gamma, cfg.gae_lambda)
        return obs, actions, old_log_prob, values.reshape(-1), advantages.reshape(-1), returns.reshape(-1)

    def update(self, reward: RewardSource) -> None:
        """One PPO update on the full rollout (``learn`` calls it): n_epochs of shuffled minibatches."""
        cfg = self.cfg
        obs, actions, old_log_prob, values, advantages, returns = self._prepare(reward)
        remaining = max(0.0, 1.0 - self.env_steps / self.total_steps)  # linear annealing to 0 over the run
        self._lr = cfg.lr * remaining if cfg.anneal_lr else cfg.lr
        self._clip_range = clip_range = cfg.clip_range * remaining if cfg.anneal_clip_range else cfg.clip_range
        self._set_lr(self._lr)

        stats: dict[str, list[torch.Tensor]] = {k: [] for k in ("policy_loss", "value_loss", "approx_kl",
                                                               "clip_fraction")}
        stop = False  # target_kl reached
        for _ in range(cfg.n_epochs):
            for idx in torch.randperm(len(obs), device=self.device).split(cfg.batch_size):
                adv = advantages[idx]
                if cfg.normalize_advantage and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                with self._autocast():
                    log_prob = self._policy_log_prob(obs[idx], actions[idx]).float()
                    value = self._values(obs[idx])
                policy_loss = clipped_surrogate(log_prob, old_log_prob[idx], adv, clip_range)
                if cfg.clip_range_vf is not None:  # SB3's value clipping: around the rollout's values
                    value = values[idx] + (value - values[idx]).clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
                value_loss = (returns[idx] - value).pow(2).mean()
                entropy = self.log_std.sum() + 0.5 * (1.0 + LOG_2PI) * self.log_std.numel()  # state-independent
                loss = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss

                with torch.no_grad():
                    log_ratio = log_prob.detach() - old_log_prob[idx]
                    approx_kl = (torch.expm1(log_ratio) - log_ratio).mean()  # Schulman's low-variance estimator
                    stats["approx_kl"].append(approx_kl)
                    stats["clip_fraction"].append(((log_ratio.exp() - 1).abs() > clip_range).float().mean())
                if cfg.target_kl is not None and approx_kl.item() > 1.5 * cfg.target_kl:
                    stop = True  # SB3: stop this update's epochs before the step that would overshoot
                    break
                self.opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.opt.step()
                self.num_updates += 1
                stats["policy_loss"].append(policy_loss.detach())
                stats["value_loss"].append(value_loss.detach())
            if stop:
                break

        self.num_iterations += 1
        self._metrics = {k: torch.stack(v).mean() for k, v in stats.items() if v}
        self._metrics["entropy"] = entropy.detach()
        self._metrics["explained_variance"] = 1 - (returns - values).var() / returns.var()

    # ------------------------------------------------------------------ logging and snapshots
    def metrics(self) -> dict[str, float]:
        """Statistics of the latest update as floats (means over its minibatches), with lr and the policy std."""
        out = {k: float(v) for k, v in self._metrics.items()}
        out["lr"] = float(self._lr)
        out["clip_range"] = float(self._clip_range)
        out["std"] = float(self.log_std.detach().exp().mean())
        return out

    def state_dict(self) -> dict:
        """Networks, optimiser, log-std, normalisation statistics, counters and the partly filled rollout."""
        p = self.pos
        return {
            "policy": self.policy.state_dict(), "value": self.value.state_dict(),
            "log_std": self.log_std.detach().clone(), "opt": self.opt.state_dict(),
            "obs_rms": self.obs_rms.state_dict(), "ret_rms": self.ret_rms.state_dict(),
            "ret": torch.from_numpy(self.ret.copy()),
            "env_steps": self.env_steps, "num_updates": self.num_updates, "num_iterations": self.num_iterations,
            "reward_version": self.reward_version,
            "rollout": {"pos": p, **{k: torch.from_numpy(getattr(self, k)[:p].copy()) for k in ROLLOUT_KEYS}},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict saved.

        The last stored step of the partial rollout is marked truncated: a resumed run starts fresh
        episodes, so GAE must not chain into them (the bootstrap from its stored next_obs stays right).
        """
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        with torch.no_grad():
            self.log_std.copy_(state["log_std"])
        self.opt.load_state_dict(state["opt"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.ret_rms.load_state_dict(state["ret_rms"])
        self.ret = _numpy(state["ret"]).astype(np.float64)  # up to the rollout's start; the truncation mark cuts it
        self.env_steps, self.num_updates = state["env_steps"], state["num_updates"]
        self.num_iterations, self.reward_version = state["num_iterations"], state["reward_version"]
        rollout = state["rollout"]
        self.pos = p = rollout["pos"]
        for key in ROLLOUT_KEYS:
            getattr(self, key)[:p] = _numpy(rollout[key])
        if p:
            self.truncated[p - 1] = True
        self._last_raw = self._last_clipped = None
