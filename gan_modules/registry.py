"""One registry per kind of building block: losses, critic regularisers, constraints, generator terms
and networks.

An entry is a factory whose keyword arguments are the block's options in configuration, e.g.
``{name: least_squares, a: -1, b: 1, c: 0}`` calls the ``least_squares`` factory with a, b, c. A name
with a dot is an import path to a factory in any module (``mypkg.losses.my_loss``), so a new equation is
one Python file named from a config, with no edit here. Unknown names and options fail in one line
naming the config key and what is allowed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Spec = str | Mapping[str, Any]


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # the config key, e.g. "model.loss"
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return add

    def names(self) -> list[str]:
        return list(self._factories)

    def factory(self, name: str, key: str | None = None) -> Callable[..., T]:
        key = key or self.kind
        if name in self._factories:
            return self._factories[name]
        if "." in name:
            module, _, attr = name.rpartition(".")
            try:
                return getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise ValueError(f"{key}={name!r} cannot be imported ({err})") from err
        raise ValueError(f"{key}={name!r} is unknown; allowed: {', '.join(self._factories)} or an import path")

    def options(self, name: str) -> list[str]:
        return list(inspect.signature(self.factory(name)).parameters)

    def build(self, spec: Spec, key: str | None = None, reserved: tuple[str, ...] = ()) -> tuple[str, T]:
        """(name, the factory's result) for a spec ``name`` or ``{name: ..., **options}``; keys in
        `reserved` (e.g. a regulariser's weight) are the caller's and are not passed on."""
        key = key or self.kind
        name, options = split_spec(spec, key)
        factory = self.factory(name, key)
        accepted = set(inspect.signature(factory).parameters)
        kwargs = {k: v for k, v in options.items() if k not in reserved}
        for option in kwargs:
            if option not in accepted:
                allowed = ", ".join([*sorted(accepted), *reserved]) or "none"
                raise ValueError(
                    f"{key}.{option} is not an option of the {name} {self.kind.split('.')[-1]}; allowed: {allowed}"
                )
        return name, factory(**kwargs)


def split_spec(spec: Spec, key: str) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{key}={spec!r} is invalid; allowed: a name or a mapping with a 'name' key")
    options = dict(spec)
    return options.pop("name"), options
