"""The compiled form of a filter: a DAG of operation nodes with shared sub-expressions."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Kind(IntEnum):
    """The shape of a value, widest last: a number, one value per symbol, a series per symbol."""

    SCALAR = 0  # a Python/numpy number or bool, the same for every symbol
    VECTOR = 1  # an array of shape (symbols, 1)
    SERIES = 2  # an array of shape (symbols, bars)
    TUPLE = 3  # several series (macd, bbands, stoch)


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One operation; ``key`` is unique per distinct computation, so equal sub-expressions share a node.

    Leaves have no ``op``: a constant holds its ``value``, a market series holds its name in ``value``.
    ``name`` says what the operation is (``"<"``, ``"ema"``, ``"index"``...) and ``options`` its
    compile-time constants (windows, the index), so later passes can rewrite nodes they know.
    """

    key: int
    kind: Kind
    boolean: bool
    source: str
    op: Callable[..., Any] | None = None
    children: tuple[Node, ...] = ()
    value: Any = None
    parts: int = 0
    name: str = ""
    options: tuple[Any, ...] = ()

    @property
    def is_constant(self) -> bool:
        """Whether the value is known at compile time."""
        return self.op is None and self.kind == Kind.SCALAR


@dataclass(slots=True)
class NodeTable:
    """Hash-conses nodes: building the same computation twice returns the first node."""

    limit: int
    _nodes: dict[Hashable, Node] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, identity: Hashable) -> Node | None:
        """The node already built for ``identity``, if any."""
        return self._nodes.get(identity)

    def add(self, identity: Hashable, build: Callable[[int], Node]) -> Node:
        """The node for ``identity``, built with the next key the first time it is seen."""
        existing = self._nodes.get(identity)
        if existing is not None:
            return existing
        node = build(len(self._nodes))
        self._nodes[identity] = node
        return node
