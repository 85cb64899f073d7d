"""SAC's update written the obvious way, as the yardstick for the optimised one in pbrl/agents/sac.py.

Batched ``baddbmm`` critics, ``torch.optim.Adam``, one backward pass per loss. It runs on a
``SAC`` agent's own networks, so the two can be compared parameter for parameter
(tests/test_sac_update.py) and timed side by side (experiments/profile_sac_update.py). Speed work
on the agent must never change what an update computes; fp32 rounding is all that may differ.
"""

from __future__ import annotations

import torch

from pbrl.agents.nets import EnsembleMLP
from pbrl.agents.sac import SAC
from pbrl.buffers.replay import Batch


def reference_q(net: EnsembleMLP, obs: torch.Tensor, action: torch.Tensor, detach: bool = False) -> torch.Tensor:
    """Q-values of every member, ``[E, B]``, by one ``baddbmm`` per layer."""
    x = torch.cat([obs, action], -1)
    x = x.expand(net.ensemble_size, *x.shape)
    ws, bs = list(net.weights), list(net.biases)
    if detach:
        ws, bs = [w.detach() for w in ws], [b.detach() for b in bs]
    for i, (w, b) in enumerate(zip(ws, bs)):
        x = torch.baddbmm(b, x, w)
        if i < len(ws) - 1:
            x = torch.relu(x)
    return x.squeeze(-1)


class ReferenceSAC:
    """Updates ``agent``'s networks in place with the plain update and its own torch.optim.Adam optimisers."""

    def __init__(self, agent: SAC):
        cfg = agent.cfg
        self.agent = agent
        self.critic_opt = torch.optim.Adam(agent.critic.parameters(), lr=cfg.critic_lr)
        self.actor_opt = torch.optim.Adam(agent.actor.parameters(), lr=cfg.actor_lr)
        self.alpha_opt = torch.optim.Adam([agent.log_alpha], lr=cfg.alpha_lr)

    def update(self, batch: Batch) -> None:
        """One update (actor, temperature and targets every step, as SACConfig's defaults)."""
        agent, cfg = self.agent, self.agent.cfg
        alpha = agent.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_log_prob = agent.actor.sample(batch.next_obs)
            next_q = reference_q(agent.critic_target, batch.next_obs, next_action).min(0).values
            target = batch.reward + cfg.discount * (1 - batch.terminated) * (next_q - alpha * next_log_prob)
        q = reference_q(agent.critic, batch.obs, batch.action)
        critic_loss = 0.5 * (q - target).pow(2).mean(1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        action, log_prob = agent.actor.sample(batch.obs)
        q_pi = reference_q(agent.critic, batch.obs, action, detach=True).min(0).values
        actor_loss = (alpha * log_prob - q_pi).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(agent.log_alpha * (log_prob.detach() + agent.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for t, s in zip(agent.critic_target.parameters(), agent.critic.parameters()):
                t.lerp_(s, cfg.tau)
