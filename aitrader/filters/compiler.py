"""Compiling filter code: a syntax tree that passed ``syntax``'s checks becomes nodes.

Nothing from the code is ever executed by Python: the checked AST becomes a DAG of numpy
operations (``nodes.Node``) that ``runtime`` evaluates; calls and subscripts are built in ``calls``.
Constants are folded at compile time, so windows and indices are plain integers checked against
``MAX_WINDOW`` before any array exists.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from aitrader.filters.calls import compile_call, compile_subscript, pick_part
from aitrader.filters.errors import FilterError
from aitrader.filters.frame import SERIES_NAMES
from aitrader.filters.helpers import HELPERS, MAX_WINDOW
from aitrader.filters.lastbar import plan_last_bar
from aitrader.filters.nodes import Kind, Node, NodeTable
from aitrader.filters.runtime import CompiledFilter
from aitrader.filters.syntax import (
    ARITHMETIC,
    BITWISE_HINTS,
    COMPARISONS,
    fail,
    is_dunder,
    not_allowed,
    parse,
)

#: Most distinct operations (after sharing equal sub-expressions) in one filter.
MAX_NODES = 2_000


class Compiler:
    """Turns a checked ``ast.Module`` into condition nodes; one instance per ``compile_filter`` call."""

    def __init__(self, code: str) -> None:
        self._code = code
        self._nodes = NodeTable(MAX_NODES)
        self._names: dict[str, Node] = {}

    # ------------------------------------------------------------------ program structure

    def program(self, tree: ast.Module) -> list[tuple[str, Node]]:
        if not tree.body:
            raise FilterError("filter is empty; write a condition such as: rsi(close, 14) < 30")
        *assignments, final = tree.body
        for statement in assignments:
            if isinstance(statement, ast.Expr):
                raise fail(
                    "only the last line may be a bare expression; assign earlier values to a name", statement
                )
            if not isinstance(statement, ast.Assign):
                raise not_allowed(statement)
            self._assign(statement)
        if isinstance(final, ast.Assign):
            raise fail("the last line must be the condition to check, not an assignment", final)
        if not isinstance(final, ast.Expr):
            raise not_allowed(final)
        body = final.value
        clauses = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
        conditions = []
        for clause in clauses:
            node = self.expression(clause)
            if node.kind == Kind.TUPLE or not node.boolean:
                raise fail(
                    f"'{self.source(clause)}' is not a condition; compare it, e.g. '{self.source(clause)} > 0'",
                    clause,
                )
            conditions.append((" ".join(self.source(clause).split()), node))
        return conditions

    def _assign(self, statement: ast.Assign) -> None:
        if len(statement.targets) != 1:
            raise fail("assign one name at a time ('a = b = ...' is not allowed)", statement)
        target = statement.targets[0]
        value = self.expression(statement.value)
        if isinstance(target, ast.Name):
            self._bind(target, value)
            return
        if isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
            if value.kind != Kind.TUPLE or value.parts != len(target.elts):
                raise fail(
                    f"'{self.source(statement.value)}' cannot be unpacked into {len(target.elts)} names",
                    target,
                )
            for index, name in enumerate(target.elts):
                self._bind(name, pick_part(self, value, index, name))  # type: ignore[arg-type]
            return
        raise fail("only plain names can be assigned to (for example: fast = ema(close, 12))", target)

    def _bind(self, target: ast.Name, value: Node) -> None:
        name = target.id
        if is_dunder(name):
            raise fail(f"names starting or ending with '__' ('{name}') are not allowed in filters", target)
        if name in HELPERS or name in SERIES_NAMES or name in ("True", "False"):
            raise fail(f"'{name}' is a built-in name of the filter language; pick another name", target)
        self._names[name] = value

    # ------------------------------------------------------------------ expressions

    def expression(self, node: ast.expr) -> Node:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BoolOp):
            return self._boolean(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return compile_call(self, node)
        if isinstance(node, ast.Subscript):
            return compile_subscript(self, node)
        raise not_allowed(node)

    def _constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool):
            return self.leaf(np.bool_(value), node)
        if isinstance(value, (int, float)):
            try:
                number = np.float64(value)
            except OverflowError:
                raise fail("number is too large", node) from None
            return self.leaf(number, node)
        raise not_allowed(node)

    def leaf(self, value: Any, where: ast.AST) -> Node:
        boolean = isinstance(value, np.bool_)
        identity = ("const", boolean, float(value)) if np.isfinite(value) else ("const", boolean, repr(value))
        return self.add(
            identity, lambda key: Node(key, Kind.SCALAR, boolean, self.source(where), value=value)
        )

    def _name(self, node: ast.Name) -> Node:
        name = node.id
        if is_dunder(name):
            raise fail(f"names starting or ending with '__' ('{name}') are not allowed in filters", node)
        if name in self._names:
            return self._names[name]
        if name in SERIES_NAMES:
            return self.add(
                ("series", name), lambda key: Node(key, Kind.SERIES, False, name, value=name, name="series")
            )
        if name in HELPERS:
            raise fail(f"'{name}' is a helper; call it, e.g. {HELPERS[name].signature()}", node)
        raise fail(
            f"unknown name '{name}'; use open, high, low, close, volume, a helper or a name assigned above",
            node,
        )

    def _binary(self, node: ast.BinOp) -> Node:
        if type(node.op) in BITWISE_HINTS:
            raise fail(BITWISE_HINTS[type(node.op)], node)
        if type(node.op) not in ARITHMETIC:
            raise fail(f"the operator '{type(node.op).__name__}' is not allowed in filters", node)
        symbol, function = ARITHMETIC[type(node.op)]
        left, right = self.expression(node.left), self.expression(node.right)
        result = self.operation(symbol, function, (left, right), node, boolean=False)
        overflowed = symbol == "**" and result.is_constant and not np.isfinite(result.value)
        if overflowed and np.isfinite(left.value) and np.isfinite(right.value):
            raise fail(f"'{self.source(node)}' is too large a number; use a smaller exponent", node)
        return result

    def _unary(self, node: ast.UnaryOp) -> Node:
        if type(node.op) in BITWISE_HINTS:
            raise fail(BITWISE_HINTS[type(node.op)], node)
        operand = self.expression(node.operand)
        if isinstance(node.op, ast.Not):
            self._require_condition(operand, node.operand)
            return self.operation("not", np.logical_not, (operand,), node, boolean=True)
        if isinstance(node.op, ast.USub):
            return self.operation("neg", np.negative, (operand,), node, boolean=False)
        return operand  # unary plus

    def _boolean(self, node: ast.BoolOp) -> Node:
        operands = [self.expression(value) for value in node.values]
        for operand, value in zip(operands, node.values, strict=True):
            self._require_condition(operand, value)
        name, function = ("and", np.logical_and) if isinstance(node.op, ast.And) else ("or", np.logical_or)
        result = operands[0]
        for operand in operands[1:]:
            result = self.operation(name, function, (result, operand), node, boolean=True)
        return result

    def _compare(self, node: ast.Compare) -> Node:
        operands = [self.expression(node.left)] + [self.expression(c) for c in node.comparators]
        result: Node | None = None
        for index, op in enumerate(node.ops):
            if type(op) not in COMPARISONS:
                raise fail(
                    f"the comparison '{type(op).__name__}' is not allowed in filters; use < <= > >= == !=",
                    node,
                )
            symbol, function = COMPARISONS[type(op)]
            pair = self.operation(
                symbol, function, (operands[index], operands[index + 1]), node, boolean=True
            )
            result = (
                pair if result is None else self.operation("and", np.logical_and, (result, pair), node, True)
            )
        assert result is not None
        return result

    # ------------------------------------------------------------------ building blocks

    @property
    def node_count(self) -> int:
        """How many distinct nodes were built (their keys are 0 to node_count - 1)."""
        return len(self._nodes)

    def operation(
        self, name: str, function: Callable[..., Any], operands: Sequence[Node], where: ast.AST, boolean: bool
    ) -> Node:
        for operand in operands:
            if operand.kind == Kind.TUPLE:
                raise fail(
                    f"'{operand.source}' has several parts; pick one, e.g. {operand.source}[0], or unpack it",
                    where,
                )
        if all(operand.is_constant for operand in operands):
            with np.errstate(all="ignore"):
                folded = function(*(operand.value for operand in operands))
            return self.leaf(np.bool_(folded) if boolean else np.float64(folded), where)
        kind = max(operand.kind for operand in operands)
        identity = (name, tuple(operand.key for operand in operands))
        return self.add(
            identity,
            lambda key: Node(key, kind, boolean, self.source(where), function, tuple(operands), name=name),
        )

    def whole_number(self, node: ast.expr, what: str) -> int:
        value = self.expression(node)
        if not value.is_constant or isinstance(value.value, np.bool_):
            raise fail(f"{what} must be a constant whole number, such as close[-1] or sma(close, 20)", node)
        number = float(value.value)
        if not np.isfinite(number) or not number.is_integer():
            raise fail(f"{what} must be a whole number, got {self.source(node)}", node)
        if abs(number) > MAX_WINDOW:
            raise fail(f"{what} is {number:.0f} bars; the most a filter may use is {MAX_WINDOW}", node)
        return int(number)

    def _require_condition(self, operand: Node, where: ast.expr) -> None:
        if not operand.boolean or operand.kind == Kind.TUPLE:
            raise fail(
                f"'{self.source(where)}' is a number, not a condition; compare it (for example '> 0')", where
            )

    def add(self, identity: Hashable, build: Callable[[int], Node]) -> Node:
        if self._nodes.get(identity) is None and len(self._nodes) >= MAX_NODES:
            raise FilterError(f"filter is too large: more than {MAX_NODES} distinct operations")
        return self._nodes.add(identity, build)

    def source(self, node: ast.AST) -> str:
        return ast.get_source_segment(self._code, node) or type(node).__name__


def compile_filter(code: str) -> CompiledFilter:
    """Compile filter code; raises ``FilterError`` with the line and column of the first problem."""
    if not isinstance(code, str):
        raise FilterError(f"filter code must be text, got {type(code).__name__}")
    tree = parse(code)
    compiler = Compiler(code)
    conditions = compiler.program(tree)
    return CompiledFilter.build(code, plan_last_bar(conditions, first_key=compiler.node_count))
