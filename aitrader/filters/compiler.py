"""Compiling filter code: parse with ``ast``, check every construct against a whitelist, build nodes.

Nothing from the code is ever executed by Python: the checked AST becomes a DAG of numpy
operations (``nodes.Node``) that ``runtime`` evaluates.  Constants are folded at compile time,
so windows and indices are plain integers checked against ``MAX_WINDOW`` before any array exists.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from aitrader.filters.errors import FilterError
from aitrader.filters.frame import SERIES_NAMES
from aitrader.filters.helpers import HELPERS, MAX_WINDOW, Helper, Param, Role
from aitrader.filters.nodes import Kind, Node, NodeTable
from aitrader.filters.runtime import CompiledFilter

#: Largest filter source, in bytes of UTF-8.
MAX_CODE_BYTES = 10 * 1024
#: Deepest nesting of the syntax tree (parentheses, operators, calls) a filter may use.
MAX_DEPTH = 64
#: Most distinct operations (after sharing equal sub-expressions) in one filter.
MAX_NODES = 2_000

_ARITHMETIC: dict[type[ast.operator], tuple[str, Callable[..., Any]]] = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide),
    ast.FloorDiv: ("//", np.floor_divide),
    ast.Mod: ("%", np.remainder),
    ast.Pow: ("**", np.power),
}
_COMPARISONS: dict[type[ast.cmpop], tuple[str, Callable[..., Any]]] = {
    ast.Lt: ("<", np.less),
    ast.LtE: ("<=", np.less_equal),
    ast.Gt: (">", np.greater),
    ast.GtE: (">=", np.greater_equal),
    ast.Eq: ("==", np.equal),
    ast.NotEq: ("!=", np.not_equal),
}
_BITWISE_HINTS: dict[type[ast.AST], str] = {
    ast.BitAnd: "'&' is not allowed in filters; use 'and'",
    ast.BitOr: "'|' is not allowed in filters; use 'or'",
    ast.Invert: "'~' is not allowed in filters; use 'not'",
}
_CONSTRUCTS: dict[type[ast.AST], str] = {
    ast.Import: "imports",
    ast.ImportFrom: "imports",
    ast.For: "loops ('for')",
    ast.AsyncFor: "loops ('for')",
    ast.While: "loops ('while')",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.Lambda: "lambda functions",
    ast.FunctionDef: "function definitions ('def')",
    ast.AsyncFunctionDef: "function definitions ('def')",
    ast.ClassDef: "class definitions",
    ast.NamedExpr: "assignment expressions (':=')",
    ast.JoinedStr: "f-strings",
    ast.Starred: "starred arguments ('*')",
    ast.If: "if statements (combine conditions with and/or/not)",
    ast.IfExp: "conditional expressions ('x if c else y')",
    ast.With: "with statements",
    ast.Try: "try statements",
    ast.Raise: "raise statements",
    ast.Return: "return statements",
    ast.Delete: "del statements",
    ast.Global: "global statements",
    ast.Nonlocal: "nonlocal statements",
    ast.AugAssign: "augmented assignments ('+='); write 'x = x + 1'",
    ast.AnnAssign: "annotated assignments",
    ast.Assert: "assert statements",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.List: "list literals",
    ast.Tuple: "tuple literals",
    ast.Set: "set literals",
    ast.Dict: "dict literals",
    ast.Slice: "slices outside an index",
    ast.Match: "match statements",
    ast.Pass: "pass statements",
    ast.Break: "break statements",
    ast.Continue: "continue statements",
}


def _fail(message: str, where: ast.AST | None) -> FilterError:
    line = getattr(where, "lineno", 1) or 1
    col = (getattr(where, "col_offset", 0) or 0) + 1
    return FilterError(message, line, col)


def _not_allowed(node: ast.AST) -> FilterError:
    if isinstance(node, ast.Attribute):
        return _fail(f"attribute access ('.{node.attr}') is not allowed in filters", node)
    if isinstance(node, ast.Constant):
        literal = "bytes literals" if isinstance(node.value, bytes) else "string literals"
        if not isinstance(node.value, (str, bytes)):
            literal = f"the constant {node.value!r}"
        return _fail(f"{literal} are not allowed in filters; use numbers and True/False", node)
    described = _CONSTRUCTS.get(type(node), f"'{type(node).__name__}'")
    return _fail(f"{described} are not allowed in filters", node)


def _parse(code: str) -> ast.Module:
    size = len(code.encode("utf-8", errors="replace"))
    if size > MAX_CODE_BYTES:
        raise FilterError(f"filter code is {size} bytes; the limit is {MAX_CODE_BYTES} bytes (10 KB)")
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as error:
        raise FilterError(f"syntax error: {error.msg}", error.lineno or 1, error.offset or 1) from None
    except (RecursionError, MemoryError):
        raise FilterError("filter code is nested too deeply to parse; split it with assignments") from None
    except ValueError as error:
        raise FilterError(f"filter code cannot be parsed: {error}") from None
    _check_depth(tree)
    _check_forbidden(tree)
    return tree


_FORBIDDEN_EVERYWHERE = (
    ast.Attribute,
    ast.JoinedStr,
    ast.Lambda,
    ast.NamedExpr,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
)


def _check_forbidden(tree: ast.AST) -> None:
    """Report the first (innermost at a position) escape-shaped construct before compiling anything."""
    found: list[tuple[int, int, int, ast.AST]] = []
    pending: list[tuple[ast.AST, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
        forbidden = isinstance(node, _FORBIDDEN_EVERYWHERE)
        forbidden |= isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))
        forbidden |= isinstance(node, ast.Name) and _is_dunder(node.id)
        if forbidden:
            found.append((getattr(node, "lineno", 1), getattr(node, "col_offset", 0), -depth, node))
    if found:
        node = min(found, key=lambda item: item[:3])[3]
        if isinstance(node, ast.Name):
            raise _fail(f"names starting or ending with '__' ('{node.id}') are not allowed in filters", node)
        raise _not_allowed(node)


def _check_depth(tree: ast.AST) -> None:
    pending: list[tuple[ast.AST, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise _fail(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels); split it with assignments",
                node,
            )
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _is_dunder(name: str) -> bool:
    return name.startswith("__") or name.endswith("__")


class _Compiler:
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
                raise _fail(
                    "only the last line may be a bare expression; assign earlier values to a name", statement
                )
            if not isinstance(statement, ast.Assign):
                raise _not_allowed(statement)
            self._assign(statement)
        if isinstance(final, ast.Assign):
            raise _fail("the last line must be the condition to check, not an assignment", final)
        if not isinstance(final, ast.Expr):
            raise _not_allowed(final)
        body = final.value
        clauses = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
        conditions = []
        for clause in clauses:
            node = self.expression(clause)
            if node.kind == Kind.TUPLE or not node.boolean:
                raise _fail(
                    f"'{self._source(clause)}' is not a condition; compare it, e.g. '{self._source(clause)} > 0'",
                    clause,
                )
            conditions.append((" ".join(self._source(clause).split()), node))
        return conditions

    def _assign(self, statement: ast.Assign) -> None:
        if len(statement.targets) != 1:
            raise _fail("assign one name at a time ('a = b = ...' is not allowed)", statement)
        target = statement.targets[0]
        value = self.expression(statement.value)
        if isinstance(target, ast.Name):
            self._bind(target, value)
            return
        if isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
            if value.kind != Kind.TUPLE or value.parts != len(target.elts):
                raise _fail(
                    f"'{self._source(statement.value)}' cannot be unpacked into {len(target.elts)} names",
                    target,
                )
            for index, name in enumerate(target.elts):
                self._bind(name, self._pick(value, index, name))  # type: ignore[arg-type]
            return
        raise _fail("only plain names can be assigned to (for example: fast = ema(close, 12))", target)

    def _bind(self, target: ast.Name, value: Node) -> None:
        name = target.id
        if _is_dunder(name):
            raise _fail(f"names starting or ending with '__' ('{name}') are not allowed in filters", target)
        if name in HELPERS or name in SERIES_NAMES or name in ("True", "False"):
            raise _fail(f"'{name}' is a built-in name of the filter language; pick another name", target)
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
            return self._call(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        raise _not_allowed(node)

    def _constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool):
            return self._leaf(np.bool_(value), node)
        if isinstance(value, (int, float)):
            try:
                number = np.float64(value)
            except OverflowError:
                raise _fail("number is too large", node) from None
            return self._leaf(number, node)
        raise _not_allowed(node)

    def _leaf(self, value: Any, where: ast.AST) -> Node:
        boolean = isinstance(value, np.bool_)
        identity = ("const", boolean, float(value)) if np.isfinite(value) else ("const", boolean, repr(value))
        return self._add(
            identity, lambda key: Node(key, Kind.SCALAR, boolean, self._source(where), value=value)
        )

    def _name(self, node: ast.Name) -> Node:
        name = node.id
        if _is_dunder(name):
            raise _fail(f"names starting or ending with '__' ('{name}') are not allowed in filters", node)
        if name in self._names:
            return self._names[name]
        if name in SERIES_NAMES:
            return self._add(("series", name), lambda key: Node(key, Kind.SERIES, False, name, value=name))
        if name in HELPERS:
            raise _fail(f"'{name}' is a helper; call it, e.g. {HELPERS[name].signature()}", node)
        raise _fail(
            f"unknown name '{name}'; use open, high, low, close, volume, a helper or a name assigned above",
            node,
        )

    def _binary(self, node: ast.BinOp) -> Node:
        if type(node.op) in _BITWISE_HINTS:
            raise _fail(_BITWISE_HINTS[type(node.op)], node)
        if type(node.op) not in _ARITHMETIC:
            raise _fail(f"the operator '{type(node.op).__name__}' is not allowed in filters", node)
        symbol, function = _ARITHMETIC[type(node.op)]
        left, right = self.expression(node.left), self.expression(node.right)
        result = self._operation(symbol, function, (left, right), node, boolean=False)
        overflowed = symbol == "**" and result.is_constant and not np.isfinite(result.value)
        if overflowed and np.isfinite(left.value) and np.isfinite(right.value):
            raise _fail(f"'{self._source(node)}' is too large a number; use a smaller exponent", node)
        return result

    def _unary(self, node: ast.UnaryOp) -> Node:
        if type(node.op) in _BITWISE_HINTS:
            raise _fail(_BITWISE_HINTS[type(node.op)], node)
        operand = self.expression(node.operand)
        if isinstance(node.op, ast.Not):
            self._require_condition(operand, node.operand)
            return self._operation("not", np.logical_not, (operand,), node, boolean=True)
        if isinstance(node.op, ast.USub):
            return self._operation("neg", np.negative, (operand,), node, boolean=False)
        return operand  # unary plus

    def _boolean(self, node: ast.BoolOp) -> Node:
        operands = [self.expression(value) for value in node.values]
        for operand, value in zip(operands, node.values, strict=True):
            self._require_condition(operand, value)
        name, function = ("and", np.logical_and) if isinstance(node.op, ast.And) else ("or", np.logical_or)
        result = operands[0]
        for operand in operands[1:]:
            result = self._operation(name, function, (result, operand), node, boolean=True)
        return result

    def _compare(self, node: ast.Compare) -> Node:
        operands = [self.expression(node.left)] + [self.expression(c) for c in node.comparators]
        result: Node | None = None
        for index, op in enumerate(node.ops):
            if type(op) not in _COMPARISONS:
                raise _fail(
                    f"the comparison '{type(op).__name__}' is not allowed in filters; use < <= > >= == !=",
                    node,
                )
            symbol, function = _COMPARISONS[type(op)]
            pair = self._operation(
                symbol, function, (operands[index], operands[index + 1]), node, boolean=True
            )
            result = (
                pair if result is None else self._operation("and", np.logical_and, (result, pair), node, True)
            )
        assert result is not None
        return result

    def _subscript(self, node: ast.Subscript) -> Node:
        value = self.expression(node.value)
        if value.kind == Kind.TUPLE:
            index = self._whole_number(node.slice, "index")
            if not -value.parts <= index < value.parts:
                raise _fail(
                    f"'{self._source(node.value)}' has {value.parts} parts; use an index from 0 to {value.parts - 1}",
                    node,
                )
            return self._pick(value, index % value.parts, node)
        if value.kind != Kind.SERIES:
            raise _fail(
                f"only series can be indexed; '{self._source(node.value)}' is already one value per symbol",
                node,
            )
        if isinstance(node.slice, ast.Slice):
            if node.slice.step is not None:
                raise _fail("slice steps are not allowed in filters; use close[-5:]", node.slice)
            lower = None if node.slice.lower is None else self._whole_number(node.slice.lower, "slice start")
            upper = None if node.slice.upper is None else self._whole_number(node.slice.upper, "slice end")
            bars = slice(lower, upper)
            return self._add(
                ("slice", value.key, lower, upper),
                lambda key: Node(
                    key, Kind.SERIES, value.boolean, self._source(node), lambda v: v[:, bars], (value,)
                ),
            )
        index = self._whole_number(node.slice, "index")
        return self._add(
            ("index", value.key, index),
            lambda key: Node(
                key,
                Kind.VECTOR,
                value.boolean,
                self._source(node),
                lambda v: v[:, index, np.newaxis],
                (value,),
            ),
        )

    # ------------------------------------------------------------------ calls

    def _call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise _not_allowed(node.func)
            raise _fail("only helper functions can be called in filters", node)
        name = node.func.id
        if _is_dunder(name):
            raise _fail(
                f"names starting or ending with '__' ('{name}') are not allowed in filters", node.func
            )
        helper = HELPERS.get(name)
        if helper is None:
            raise _fail(
                f"'{name}' is not a filter helper; the helpers are: {', '.join(sorted(HELPERS))}", node.func
            )
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                raise _not_allowed(argument)
        if helper.variadic:
            return self._variadic(helper, node)
        arguments = self._bind_arguments(helper, node)
        children: list[Node] = []
        constants: list[Any] = []
        for param, argument in zip(helper.params, arguments, strict=True):
            if param.role in (Role.SERIES, Role.OPERAND):
                child = self._series_argument(helper, param, argument, node)
                children.append(child)
            else:
                constants.append(self._option(helper, param, argument))
        kind = Kind.TUPLE if helper.outputs else Kind.SERIES
        if helper.elementwise:
            kind = children[0].kind
        function = helper.function
        bound = tuple(constants)
        identity = ("call", name, tuple(c.key for c in children), bound)
        source = self._source(node)
        result = self._add(
            identity,
            lambda key: Node(
                key,
                kind,
                helper.boolean,
                source,
                lambda *a: function(*a, *bound),
                tuple(children),
                parts=len(helper.outputs),
            ),
        )
        if helper.elementwise and all(c.is_constant for c in children):
            return self._leaf(np.float64(function(*(c.value for c in children))), node)
        return result

    def _bind_arguments(self, helper: Helper, node: ast.Call) -> list[ast.expr | Any]:
        params = helper.params
        if len(node.args) > len(params):
            raise _fail(f"{helper.name}() takes at most {len(params)} arguments: {helper.signature()}", node)
        given: dict[str, ast.expr] = {p.name: a for p, a in zip(params, node.args, strict=False)}
        names = {p.name for p in params}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise _fail("'**' arguments are not allowed in filters", keyword.value)
            if keyword.arg not in names:
                raise _fail(
                    f"{helper.name}() has no argument '{keyword.arg}'; its signature is {helper.signature()}",
                    keyword.value,
                )
            if keyword.arg in given:
                raise _fail(f"{helper.name}() got '{keyword.arg}' twice", keyword.value)
            given[keyword.arg] = keyword.value
        arguments: list[ast.expr | Any] = []
        for param in params:
            if param.name in given:
                arguments.append(given[param.name])
            elif param.required:
                raise _fail(f"{helper.name}() needs '{param.name}': {helper.signature()}", node)
            else:
                arguments.append(_Default(param.default))
        return arguments

    def _series_argument(self, helper: Helper, param: Param, argument: Any, call: ast.Call) -> Node:
        if isinstance(argument, _Default):
            raise _fail(f"{helper.name}() needs '{param.name}': {helper.signature()}", call)
        value = self.expression(argument)
        if value.kind == Kind.TUPLE:
            raise _fail(
                f"pick one part of '{self._source(argument)}' first, e.g. {self._source(argument)}[0]",
                argument,
            )
        if param.role == Role.SERIES and value.kind != Kind.SERIES:
            raise _fail(
                f"{helper.name}() needs {param.role.value} for '{param.name}', not '{self._source(argument)}'",
                argument,
            )
        return value

    def _option(self, helper: Helper, param: Param, argument: Any) -> Any:
        if isinstance(argument, _Default):
            return argument.value
        if param.role == Role.NUMBER:
            value = self.expression(argument)
            if not value.is_constant or not np.isfinite(value.value):
                raise _fail(f"{helper.name}() needs {param.role.value} for '{param.name}'", argument)
            return float(value.value)
        if (
            param.role == Role.OPTIONAL_WINDOW
            and isinstance(argument, ast.Constant)
            and argument.value is None
        ):
            return None
        window = self._whole_number(argument, f"{helper.name}() '{param.name}'")
        if window < 1:
            raise _fail(f"{helper.name}() '{param.name}' must be at least 1 bar, got {window}", argument)
        return window

    def _variadic(self, helper: Helper, node: ast.Call) -> Node:
        if node.keywords:
            raise _fail(f"{helper.name}() takes no keyword arguments", node.keywords[0].value)
        if len(node.args) < 2:
            window = "highest" if helper.name == "max" else "lowest"
            raise _fail(
                f"{helper.name}() compares two or more values elementwise; use {window}(x, n) for a window",
                node,
            )
        operands = [self.expression(argument) for argument in node.args]
        for operand, argument in zip(operands, node.args, strict=True):
            if operand.kind == Kind.TUPLE:
                raise _fail(f"pick one part of '{self._source(argument)}' first", argument)
        return self._operation(helper.name, helper.function, tuple(operands), node, boolean=False)

    # ------------------------------------------------------------------ building blocks

    def _operation(
        self, name: str, function: Callable[..., Any], operands: Sequence[Node], where: ast.AST, boolean: bool
    ) -> Node:
        for operand in operands:
            if operand.kind == Kind.TUPLE:
                raise _fail(
                    f"'{operand.source}' has several parts; pick one, e.g. {operand.source}[0], or unpack it",
                    where,
                )
        if all(operand.is_constant for operand in operands):
            with np.errstate(all="ignore"):
                folded = function(*(operand.value for operand in operands))
            return self._leaf(np.bool_(folded) if boolean else np.float64(folded), where)
        kind = max(operand.kind for operand in operands)
        identity = (name, tuple(operand.key for operand in operands))
        return self._add(
            identity, lambda key: Node(key, kind, boolean, self._source(where), function, tuple(operands))
        )

    def _pick(self, value: Node, index: int, where: ast.AST) -> Node:
        return self._add(
            ("part", value.key, index),
            lambda key: Node(
                key, Kind.SERIES, value.boolean, self._source(where), operator.itemgetter(index), (value,)
            ),
        )

    def _whole_number(self, node: ast.expr, what: str) -> int:
        value = self.expression(node)
        if not value.is_constant or isinstance(value.value, np.bool_):
            raise _fail(f"{what} must be a constant whole number, such as close[-1] or sma(close, 20)", node)
        number = float(value.value)
        if not np.isfinite(number) or not number.is_integer():
            raise _fail(f"{what} must be a whole number, got {self._source(node)}", node)
        if abs(number) > MAX_WINDOW:
            raise _fail(f"{what} is {number:.0f} bars; the most a filter may use is {MAX_WINDOW}", node)
        return int(number)

    def _require_condition(self, operand: Node, where: ast.expr) -> None:
        if not operand.boolean or operand.kind == Kind.TUPLE:
            raise _fail(
                f"'{self._source(where)}' is a number, not a condition; compare it (for example '> 0')", where
            )

    def _add(self, identity: Hashable, build: Callable[[int], Node]) -> Node:
        if self._nodes.get(identity) is None and len(self._nodes) >= MAX_NODES:
            raise FilterError(f"filter is too large: more than {MAX_NODES} distinct operations")
        return self._nodes.add(identity, build)

    def _source(self, node: ast.AST) -> str:
        return ast.get_source_segment(self._code, node) or type(node).__name__


class _Default:
    """A parameter the call left out; holds the helper's default."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def compile_filter(code: str) -> CompiledFilter:
    """Compile filter code; raises ``FilterError`` with the line and column of the first problem."""
    if not isinstance(code, str):
        raise FilterError(f"filter code must be text, got {type(code).__name__}")
    tree = _parse(code)
    conditions = _Compiler(code).program(tree)
    return CompiledFilter.build(code, conditions)
