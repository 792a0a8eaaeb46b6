"""Compiling calls and subscripts: helper arguments bound and checked by role, indexes and slices
along the bars axis, and parts picked out of tuple results."""

from __future__ import annotations

import ast
import operator
from typing import TYPE_CHECKING, Any

import numpy as np

from aitrader.filters.helpers import HELPERS, Helper, Param, Role
from aitrader.filters.nodes import Kind, Node
from aitrader.filters.syntax import fail, is_dunder, not_allowed

if TYPE_CHECKING:
    from aitrader.filters.compiler import Compiler


def compile_call(compiler: Compiler, node: ast.Call) -> Node:
    """The node of a helper call, its arguments checked against the helper's parameters."""
    if not isinstance(node.func, ast.Name):
        if isinstance(node.func, ast.Attribute):
            raise not_allowed(node.func)
        raise fail("only helper functions can be called in filters", node)
    name = node.func.id
    if is_dunder(name):
        raise fail(f"names starting or ending with '__' ('{name}') are not allowed in filters", node.func)
    helper = HELPERS.get(name)
    if helper is None:
        raise fail(
            f"'{name}' is not a filter helper; the helpers are: {', '.join(sorted(HELPERS))}", node.func
        )
    for argument in node.args:
        if isinstance(argument, ast.Starred):
            raise not_allowed(argument)
    if helper.variadic:
        return _variadic(compiler, helper, node)
    arguments = _bind_arguments(helper, node)
    children: list[Node] = []
    constants: list[Any] = []
    for param, argument in zip(helper.params, arguments, strict=True):
        if param.role in (Role.SERIES, Role.OPERAND):
            child = _series_argument(compiler, helper, param, argument, node)
            children.append(child)
        else:
            constants.append(_option(compiler, helper, param, argument))
    kind = Kind.TUPLE if helper.outputs else Kind.SERIES
    if helper.elementwise:
        kind = children[0].kind
    function = helper.function
    bound = tuple(constants)
    identity = ("call", name, tuple(c.key for c in children), bound)
    source = compiler.source(node)
    result = compiler.add(
        identity,
        lambda key: Node(
            key,
            kind,
            helper.boolean,
            source,
            lambda *a: function(*a, *bound),
            tuple(children),
            parts=len(helper.outputs),
            name=name,
            options=bound,
        ),
    )
    if helper.elementwise and all(c.is_constant for c in children):
        return compiler.leaf(np.float64(function(*(c.value for c in children))), node)
    return result


def _bind_arguments(helper: Helper, node: ast.Call) -> list[ast.expr | Any]:
    params = helper.params
    if len(node.args) > len(params):
        raise fail(f"{helper.name}() takes at most {len(params)} arguments: {helper.signature()}", node)
    given: dict[str, ast.expr] = {p.name: a for p, a in zip(params, node.args, strict=False)}
    names = {p.name for p in params}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise fail("'**' arguments are not allowed in filters", keyword.value)
        if keyword.arg not in names:
            raise fail(
                f"{helper.name}() has no argument '{keyword.arg}'; its signature is {helper.signature()}",
                keyword.value,
            )
        if keyword.arg in given:
            raise fail(f"{helper.name}() got '{keyword.arg}' twice", keyword.value)
        given[keyword.arg] = keyword.value
    arguments: list[ast.expr | Any] = []
    for param in params:
        if param.name in given:
            arguments.append(given[param.name])
        elif param.required:
            raise fail(f"{helper.name}() needs '{param.name}': {helper.signature()}", node)
        else:
            arguments.append(_Default(param.default))
    return arguments


def _series_argument(compiler: Compiler, helper: Helper, param: Param, argument: Any, call: ast.Call) -> Node:
    if isinstance(argument, _Default):
        raise fail(f"{helper.name}() needs '{param.name}': {helper.signature()}", call)
    value = compiler.expression(argument)
    if value.kind == Kind.TUPLE:
        raise fail(
            f"pick one part of '{compiler.source(argument)}' first, e.g. {compiler.source(argument)}[0]",
            argument,
        )
    if param.role == Role.SERIES and value.kind != Kind.SERIES:
        raise fail(
            f"{helper.name}() needs {param.role.value} for '{param.name}', not '{compiler.source(argument)}'",
            argument,
        )
    return value


def _option(compiler: Compiler, helper: Helper, param: Param, argument: Any) -> Any:
    if isinstance(argument, _Default):
        return argument.value
    if param.role == Role.NUMBER:
        value = compiler.expression(argument)
        if not value.is_constant or not np.isfinite(value.value):
            raise fail(f"{helper.name}() needs {param.role.value} for '{param.name}'", argument)
        return float(value.value)
    if param.role == Role.OPTIONAL_WINDOW and isinstance(argument, ast.Constant) and argument.value is None:
        return None
    window = compiler.whole_number(argument, f"{helper.name}() '{param.name}'")
    if window < 1:
        raise fail(f"{helper.name}() '{param.name}' must be at least 1 bar, got {window}", argument)
    return window


def _variadic(compiler: Compiler, helper: Helper, node: ast.Call) -> Node:
    if node.keywords:
        raise fail(f"{helper.name}() takes no keyword arguments", node.keywords[0].value)
    if len(node.args) < 2:
        window = "highest" if helper.name == "max" else "lowest"
        raise fail(
            f"{helper.name}() compares two or more values elementwise; use {window}(x, n) for a window",
            node,
        )
    operands = [compiler.expression(argument) for argument in node.args]
    for operand, argument in zip(operands, node.args, strict=True):
        if operand.kind == Kind.TUPLE:
            raise fail(f"pick one part of '{compiler.source(argument)}' first", argument)
    return compiler.operation(helper.name, helper.function, tuple(operands), node, boolean=False)


def compile_subscript(compiler: Compiler, node: ast.Subscript) -> Node:
    """The node of ``x[i]`` or ``x[a:b]`` along the bars axis, or of one part of a tuple result."""
    value = compiler.expression(node.value)
    if value.kind == Kind.TUPLE:
        index = compiler.whole_number(node.slice, "index")
        if not -value.parts <= index < value.parts:
            raise fail(
                f"'{compiler.source(node.value)}' has {value.parts} parts; use an index from 0 to {value.parts - 1}",
                node,
            )
        return pick_part(compiler, value, index % value.parts, node)
    if value.kind != Kind.SERIES:
        raise fail(
            f"only series can be indexed; '{compiler.source(node.value)}' is already one value per symbol",
            node,
        )
    if isinstance(node.slice, ast.Slice):
        if node.slice.step is not None:
            raise fail("slice steps are not allowed in filters; use close[-5:]", node.slice)
        lower = None if node.slice.lower is None else compiler.whole_number(node.slice.lower, "slice start")
        upper = None if node.slice.upper is None else compiler.whole_number(node.slice.upper, "slice end")
        bars = slice(lower, upper)
        return compiler.add(
            ("slice", value.key, lower, upper),
            lambda key: Node(
                key,
                Kind.SERIES,
                value.boolean,
                compiler.source(node),
                lambda v: v[:, bars],
                (value,),
                name="slice",
                options=(lower, upper),
            ),
        )
    index = compiler.whole_number(node.slice, "index")
    return compiler.add(
        ("index", value.key, index),
        lambda key: Node(
            key,
            Kind.VECTOR,
            value.boolean,
            compiler.source(node),
            lambda v: v[:, index, np.newaxis],
            (value,),
            name="index",
            options=(index,),
        ),
    )


def pick_part(compiler: Compiler, value: Node, index: int, where: ast.AST) -> Node:
    """The node of part ``index`` of a tuple result such as ``macd(close)``."""
    return compiler.add(
        ("part", value.key, index),
        lambda key: Node(
            key,
            Kind.SERIES,
            value.boolean,
            compiler.source(where),
            operator.itemgetter(index),
            (value,),
            name="part",
            options=(index,),
        ),
    )


class _Default:
    """A parameter the call left out; holds the helper's default."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value
