"""The speed code, in its own room: what the plug-ins run when ``fast=True`` (the default).

- :mod:`~cartpole_dqn.dqn.fast.explicit`: the Q-networks' forward and backward passes written out
  with autograd's own kernels (bitwise autograd's gradients, without its graph);
- :mod:`~cartpole_dqn.dqn.fast.quantile_loss`: QR-DQN's quantile Huber loss with its gradient
  written out (bitwise autograd's);
- :mod:`~cartpole_dqn.dqn.fast.optim`: ``FlatAdam``, torch's Adam bit for bit on flat buffers;
- :mod:`~cartpole_dqn.dqn.fast.torch_private`: every private torch API the above (and the agents'
  foreach target update and clipping) call, and the check that falls back to the plain path, with
  one warning, on a torch that lacks one.

The windowed replay buffer, which the prioritized buffer builds on, lives with the buffers
(:mod:`cartpole_dqn.dqn.buffers`). ``fast=False`` on an agent runs none of this.
"""
