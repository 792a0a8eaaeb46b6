"""Checking filter source before compiling it: size, parse, nesting depth and escape-shaped constructs.

Everything here looks at the syntax tree only; ``compiler`` turns a tree that passed into nodes.
Errors carry the line and column of the construct they name (``FilterError``).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import numpy as np

from aitrader.filters.errors import FilterError

#: Largest filter source, in bytes of UTF-8.
MAX_CODE_BYTES = 10 * 1024
#: Deepest nesting of the syntax tree (parentheses, operators, calls) a filter may use.
MAX_DEPTH = 64

#: Arithmetic operators of the language, with the numpy function each one runs.
ARITHMETIC: dict[type[ast.operator], tuple[str, Callable[..., Any]]] = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide),
    ast.FloorDiv: ("//", np.floor_divide),
    ast.Mod: ("%", np.remainder),
    ast.Pow: ("**", np.power),
}
#: Comparisons of the language, with the numpy function each one runs.
COMPARISONS: dict[type[ast.cmpop], tuple[str, Callable[..., Any]]] = {
    ast.Lt: ("<", np.less),
    ast.LtE: ("<=", np.less_equal),
    ast.Gt: (">", np.greater),
    ast.GtE: (">=", np.greater_equal),
    ast.Eq: ("==", np.equal),
    ast.NotEq: ("!=", np.not_equal),
}
BITWISE_HINTS: dict[type[ast.AST], str] = {
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


def fail(message: str, where: ast.AST | None) -> FilterError:
    """A ``FilterError`` positioned at ``where`` (1-based line and column)."""
    line = getattr(where, "lineno", 1) or 1
    col = (getattr(where, "col_offset", 0) or 0) + 1
    return FilterError(message, line, col)


def not_allowed(node: ast.AST) -> FilterError:
    """The error for a construct outside the language, naming what it is."""
    if isinstance(node, ast.Attribute):
        return fail(f"attribute access ('.{node.attr}') is not allowed in filters", node)
    if isinstance(node, ast.Constant):
        literal = "bytes literals" if isinstance(node.value, bytes) else "string literals"
        if not isinstance(node.value, (str, bytes)):
            literal = f"the constant {node.value!r}"
        return fail(f"{literal} are not allowed in filters; use numbers and True/False", node)
    described = _CONSTRUCTS.get(type(node), f"'{type(node).__name__}'")
    return fail(f"{described} are not allowed in filters", node)


def parse(code: str) -> ast.Module:
    """Parse ``code`` and reject oversized, too deeply nested or escape-shaped input."""
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
        forbidden |= isinstance(node, ast.Name) and is_dunder(node.id)
        if forbidden:
            found.append((getattr(node, "lineno", 1), getattr(node, "col_offset", 0), -depth, node))
    if found:
        node = min(found, key=lambda item: item[:3])[3]
        if isinstance(node, ast.Name):
            raise fail(f"names starting or ending with '__' ('{node.id}') are not allowed in filters", node)
        raise not_allowed(node)


def _check_depth(tree: ast.AST) -> None:
    pending: list[tuple[ast.AST, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise fail(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels); split it with assignments",
                node,
            )
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def is_dunder(name: str) -> bool:
    """Whether ``name`` starts or ends with a double underscore."""
    return name.startswith("__") or name.endswith("__")
