"""Soft actor-critic (Haarnoja et al. 2018) with twin critics batched as one ensemble module.

The update reads top to bottom like the paper: critic target under no_grad, critic loss, actor
loss through critics whose weights are detached (no wasted weight gradients), temperature loss,
Polyak-averaged target critics. ``precision="bf16"`` runs the matmuls under CPU/CUDA autocast with
fp32 master weights; losses and log-probabilities stay fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pbrl.agents.base import RewardChange, Transitions
from pbrl.agents.nets import INITS, EnsembleMLP, fp32_output, init_weights_, mlp
from pbrl.agents.optim import Adam, make_adam
from pbrl.buffers.replay import Batch, ReplayBuffer
from pbrl.errors import ConfigError, check_choice
from pbrl.reward.source import RewardSource

LOG_2PI = math.log(2 * math.pi)
LOG_2 = math.log(2.0)


@dataclass
class SACConfig:
    """SAC hyperparameters; every field is documented in conf/agent/sac.yaml."""

    name: str = "sac"
    hidden_dim: int = 256
    depth: int = 2
    num_critics: int = 2
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 1.0
    target_entropy: float | None = None  # None: -action_dim
    discount: float = 0.99
    tau: float = 0.005
    updates_per_step: int = 1
    actor_update_every: int = 1
    target_update_every: int = 1
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    init: str = "default"  # default (torch's nn.Linear init) | orthogonal (B-Pref)
    recent_fraction: float = 0.0  # QPA: this share of each batch from the newest recent_window transitions
    recent_window: int = 10000  # while the feedback budget lasts (QPA: 10 episodes x 1000 steps)

    def check(self) -> None:
        """Raise ConfigError naming the first invalid field (types are checked by agent_config)."""
        check_choice("agent.init", self.init, INITS)
        if not 0 <= self.recent_fraction <= 1:
            raise ConfigError("agent.recent_fraction", f"got {self.recent_fraction!r}; must be in [0, 1]")
        if self.recent_window < 1:
            raise ConfigError("agent.recent_window", f"got {self.recent_window!r}; must be an integer >= 1")
        if not 0 < self.tau <= 1:
            raise ConfigError("agent.tau", f"got {self.tau!r}; must be in (0, 1]")
        if not 0 <= self.discount <= 1:
            raise ConfigError("agent.discount", f"got {self.discount!r}; must be in [0, 1]")
        if self.log_std_min >= self.log_std_max:
            raise ConfigError("agent.log_std_min", f"got {self.log_std_min} >= log_std_max {self.log_std_max}; "
                                                   "must be lower")


class Actor(nn.Module):
    """Tanh-squashed diagonal Gaussian policy."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, depth: int,
                 log_std_min: float, log_std_max: float):
        super().__init__()
        self.net = mlp(obs_dim, hidden_dim, depth, 2 * action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std of the pre-tanh Gaussian; log-std squashed smoothly into its bounds."""
        hidden = self.net[:-1](obs)
        mean, log_std = fp32_output(self.net[-1], hidden).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action in (-1, 1) and its log-probability (tanh correction included)."""
        mean, log_std = self(obs)
        eps = torch.randn_like(mean)
        x = mean + log_std.exp() * eps
        action = torch.tanh(x)
        gauss_log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)
        # log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)), stable for large |x|
        log_det = (2.0 * (LOG_2 - x - F.softplus(-2.0 * x))).sum(-1)
        return action, gauss_log_prob - log_det


class SAC:
    """The SAC agent (pbrl/agents/base.py's protocol) with its replay buffer; ``update`` is one gradient step."""

    n_envs = 1  # one env, one update (or updates_per_step) per env step
    takes_step_rewards = True  # stored in the replay buffer with each transition (relabelled when the reward changes)

    def __init__(self, obs_dim: int, action_dim: int, cfg: SACConfig, device: torch.device | str = "cpu",
                 precision: str = "fp32", capacity: int = 1_000_000):
        self.cfg = cfg
        self.device = torch.device(device)
        self.precision = precision
        self.action_dim = action_dim
        self.actor = init_weights_(Actor(obs_dim, action_dim, cfg.hidden_dim, cfg.depth, cfg.log_std_min,
                                         cfg.log_std_max), cfg.init).to(self.device)
        self.critic = init_weights_(EnsembleMLP(cfg.num_critics, obs_dim + action_dim, cfg.hidden_dim, cfg.depth, 1),
                                    cfg.init).to(self.device)
        self.critic_target = EnsembleMLP(cfg.num_critics, obs_dim + action_dim, cfg.hidden_dim, cfg.depth,
                                         1).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device, requires_grad=True)
        self.target_entropy = -float(action_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        self.actor_opt = self._adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_opt = self._adam(self.critic.parameters(), cfg.critic_lr)
        self.alpha_opt = self._adam([self.log_alpha], cfg.alpha_lr)
        self.num_updates = 0
        self._metrics: dict[str, torch.Tensor] = {}  # detached tensors; .item() only when logged
        self.buffer = ReplayBuffer(capacity, obs_dim, action_dim, self.device)
        self.labels_done = False  # the feedback budget is used up (QPA's recent batches stop then)

    # ---------------------------------------------------------------------------- the protocol
    def observe(self, step: Transitions) -> None:
        """Store the step's transitions in the replay buffer."""
        for i in range(len(step.obs)):
            self.buffer.add(step.obs[i], step.action[i], step.reward[i], step.terminated[i], step.next_obs[i])

    def learn(self, reward: RewardSource) -> None:
        """``updates_per_step`` updates on replayed batches."""
        for _ in range(self.cfg.updates_per_step):
            self._replay_update(reward)

    def _replay_update(self, reward: RewardSource) -> None:
        """One update on a sampled batch; a per-batch reward (the k-NN bonus) replaces the stored one."""
        batch = self._sample(reward)
        if reward.per_batch:
            batch = batch._replace(reward=reward(batch.obs, batch.action))
        self.update(batch)

    def _sample(self, reward: RewardSource) -> Batch:
        """A uniform batch; with ``recent_fraction`` (QPA) part of it from the newest ``recent_window`` transitions,
        while a learned reward is being trained (after the first round, until the feedback budget is used up)."""
        n = self.cfg.batch_size
        recent = round(n * self.cfg.recent_fraction) if reward.version and not self.labels_done else 0
        if not recent:
            return self.buffer.sample(n)
        batch, newest = self.buffer.sample(n - recent), self.buffer.sample_recent(recent, self.cfg.recent_window)
        return Batch(*(torch.cat(pair) for pair in zip(batch, newest)))

    def reward_changed(self, change: RewardChange) -> None:
        """Relabel the whole buffer; after the first change, PEBBLE's fresh critic and ``reset_updates`` updates."""
        reward = change.reward
        self.labels_done = change.last
        if not reward.per_batch:  # a per-batch reward (RUNE's) is computed on every sampled batch, never stored
            self.buffer.relabel(reward, batch_size=reward.batch_size, device=self.device)
        if change.first:  # a fresh critic for the learned reward, then a few updates on the relabelled buffer
            self.reset_critic()
            if change.reset_actor:  # keep only the exploration data of pretraining
                self.reset_actor()
            for _ in range(change.reset_updates):
                self._replay_update(reward)

    def _adam(self, params, lr: float) -> Adam | torch.optim.Adam:
        # torch's fused Adam kernel without torch.optim's per-call bookkeeping (pbrl/agents/optim.py)
        return make_adam(params, lr, self.device)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    @property
    def alpha(self) -> torch.Tensor:
        """Current entropy temperature (a detached scalar tensor)."""
        return self.log_alpha.detach().exp()

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Action in [-1, 1] for one observation ``[obs_dim]`` or a batch ``[N, obs_dim]``."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if deterministic:
            action = torch.tanh(self.actor(obs_t)[0])
        else:
            action = self.actor.sample(obs_t)[0]
        return action.cpu().numpy()

    def q_values(self, obs: torch.Tensor, action: torch.Tensor, target: bool = False, params=None) -> torch.Tensor:
        """Q-values of every critic member: ``[num_critics, B]``."""
        net = self.critic_target if target else self.critic
        return net(torch.cat([obs, action], dim=-1), params).squeeze(-1).float()

    def update(self, batch: Batch) -> None:
        """One SAC gradient step on ``batch``: critics always, actor/temperature and targets on schedule."""
        cfg = self.cfg
        alpha = self.alpha
        with self._autocast():
            with torch.no_grad():
                next_action, next_log_prob = self.actor.sample(batch.next_obs)
                next_q = self.q_values(batch.next_obs, next_action, target=True).min(0).values
                target_q = batch.reward + cfg.discount * (1.0 - batch.terminated) * (next_q - alpha * next_log_prob)
            q = self.q_values(batch.obs, batch.action)  # [num_critics, B]
            critic_loss = 0.5 * (q - target_q).pow(2).mean(1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        self._metrics.update(critic_loss=critic_loss.detach(), q_mean=q.detach().mean())

        if self.num_updates % cfg.actor_update_every == 0:
            self._update_actor_and_alpha(batch.obs, alpha)
        if self.num_updates % cfg.target_update_every == 0:
            with torch.no_grad():
                torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()), cfg.tau)
        self.num_updates += 1

    def _update_actor_and_alpha(self, obs: torch.Tensor, alpha: torch.Tensor) -> None:
        with self._autocast():
            action, log_prob = self.actor.sample(obs)
            # critic weights detached: the actor loss needs dQ/da, not dQ/dweights
            q = self.q_values(obs, action, params=self.critic.detached_params()).min(0).values
            actor_loss = (alpha * log_prob - q).mean()
        # the temperature's loss sees log_prob detached and the actor's sees alpha detached: one
        # backward through their sum gives each its own gradient, and saves a pass of autograd
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.actor_opt.zero_grad()
        self.alpha_opt.zero_grad()
        (actor_loss + alpha_loss).backward()
        self.actor_opt.step()
        self.alpha_opt.step()
        self._metrics.update(actor_loss=actor_loss.detach(), alpha_loss=alpha_loss.detach(),
                             entropy=-log_prob.detach().mean())

    def reset_critic(self) -> None:
        """Fresh critics, targets and critic optimiser (PEBBLE does this after pretraining); actor and alpha kept."""
        self.critic = init_weights_(EnsembleMLP(self.cfg.num_critics, self.critic.weights[0].shape[1],
                                                self.cfg.hidden_dim, self.cfg.depth, 1), self.cfg.init).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_opt = self._adam(self.critic.parameters(), self.cfg.critic_lr)

    def reset_actor(self) -> None:
        """Fresh actor, actor optimiser and temperature (back to ``init_alpha``); critics kept."""
        self.actor = init_weights_(Actor(self.actor.net[0].in_features, self.action_dim, self.cfg.hidden_dim,
                                         self.cfg.depth, self.cfg.log_std_min, self.cfg.log_std_max),
                                   self.cfg.init).to(self.device)
        self.actor_opt = self._adam(self.actor.parameters(), self.cfg.actor_lr)
        with torch.no_grad():
            self.log_alpha.fill_(math.log(self.cfg.init_alpha))
        self.alpha_opt = self._adam([self.log_alpha], self.cfg.alpha_lr)

    def metrics(self) -> dict[str, float]:
        """Latest training statistics as floats (the only place that syncs with the device)."""
        out = {k: float(v) for k, v in self._metrics.items()}
        out["alpha"] = float(self.alpha)
        return out

    def state_dict(self) -> dict:
        """Everything needed to resume training exactly: networks, optimisers, temperature, counters."""
        return {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(), "num_updates": self.num_updates,
            "labels_done": self.labels_done, "buffer": self.buffer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict saved."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.num_updates = state["num_updates"]
        self.labels_done = state.get("labels_done", False)
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
