"""Old module paths, still importable: 0.1.0 was one flat package, 0.2 has layer subpackages.

SB3 pickles classes by module path, so ``model.zip`` files and checkpoints written by 0.1.0 name
``cartpole_dqn.policies.DuelingDQNPolicy``, ``cartpole_dqn.buffers.PrioritizedReplayBuffer`` and
``cartpole_dqn.sumtree.SumTree``. A meta path finder maps each old path to the module that holds
those classes now (the same module object, so ``isinstance`` checks hold), for unpickling and for
user code that imported the plug-ins from the old paths (and, since 0.3.0, 0.2.0's
``cartpole_dqn.dqn.factory``, ``.optim`` and ``.explicit``, now in ``run/`` and ``dqn/fast/``). These
aliases may be dropped in 1.0.0.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED = {
    "cartpole_dqn.agent": "cartpole_dqn.dqn.agent",
    "cartpole_dqn.policies": "cartpole_dqn.dqn.policies",
    "cartpole_dqn.networks": "cartpole_dqn.dqn.networks",
    "cartpole_dqn.buffers": "cartpole_dqn.dqn.buffers",
    "cartpole_dqn.sumtree": "cartpole_dqn.dqn.sumtree",
    "cartpole_dqn.dqn.factory": "cartpole_dqn.run.factory",  # 0.2.0: building agents from configs
    "cartpole_dqn.dqn.optim": "cartpole_dqn.dqn.fast.optim",  # 0.2.0 zips pickle FlatAdam by this path
    "cartpole_dqn.dqn.explicit": "cartpole_dqn.dqn.fast.explicit",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The target module ran when it was imported."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        new = MOVED.get(fullname)
        return None if new is None else importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
