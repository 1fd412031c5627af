"""A DummyVecEnv that does not deep-copy every step's observations and info dicts.

SB3's ``DummyVecEnv.step_wait`` returns ``deepcopy(self.buf_infos)`` and a deep copy of its
observation buffer: on CartPole those copies cost more than the env's own step. The info dicts
are new every step (each env returns a fresh one, which ``step_wait`` then annotates), so a new
list holding them is as safe a hand-over; an array observation is copied with ``ndarray.copy``.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn


class ListedInfosDummyVecEnv(DummyVecEnv):
    """SB3's DummyVecEnv, whose ``step_wait`` returns the info dicts in a new list, not deep copies."""

    def _obs_from_buf(self) -> VecEnvObs:
        if list(self.buf_obs) == [None]:  # one array observation (not a Dict space)
            return self.buf_obs[None].copy()  # type: ignore[index]
        return super()._obs_from_buf()

    def step_wait(self) -> VecEnvStepReturn:
        for env_idx in range(self.num_envs):
            obs, self.buf_rews[env_idx], terminated, truncated, self.buf_infos[env_idx] = self.envs[
                env_idx
            ].step(self.actions[env_idx])
            # SB3's conversion to its VecEnv API (dones, TimeLimit.truncated, terminal_observation)
            self.buf_dones[env_idx] = terminated or truncated
            self.buf_infos[env_idx]["TimeLimit.truncated"] = truncated and not terminated
            if self.buf_dones[env_idx]:
                self.buf_infos[env_idx]["terminal_observation"] = obs
                obs, self.reset_infos[env_idx] = self.envs[env_idx].reset()
            self._save_obs(env_idx, obs)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), list(self.buf_infos)
