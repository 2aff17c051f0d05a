"""Import stand-ins so MultiVae's model classes load beside the CPU-only torch.

MultiVae imports torchvision (and nltk) at package level, only for its datasets, metrics and
trainers; torchvision does not load beside this torch build. The benchmark drives MultiVae's
models with a plain Adam loop and never touches those modules, so any attribute of a stand-in
module is a dummy class. Call :func:`install` before ``import multivae``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

STANDED_IN = ("torchvision", "nltk")


class _StandIn(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in STANDED_IN:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StandIn(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
