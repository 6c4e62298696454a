"""A small AST mutator: enumerate single-point mutants of one module, apply one, print it back as source.

A mutant is named by the position of its node in a deterministic walk of the module's AST and an operator
(``Mutant.site`` + ``Mutant.op``), so applying it to a fresh parse of the same source gives the same program.
The printed source comes from :func:`ast.unparse`: comments and layout are lost, behaviour is not.

Operators (what a reviewer would call "a changed decision"):
* ``cmp``: comparison swaps (``<`` <-> ``<=``, ``<`` <-> ``>``, ``==`` <-> ``!=``, ``is`` <-> ``is not``,
  ``in`` <-> ``not in``) and the negation of a whole comparison;
* ``arith``: arithmetic operator swaps (``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``/``, ``%`` -> ``*``,
  ``**`` -> ``*``), in expressions and augmented assignments, and a dropped unary minus;
* ``call``: ``max`` <-> ``min``;
* ``const``: numbers to 0 / 1 / +1 / x2 (each that differs), ``True`` <-> ``False``;
* ``bool``: ``and`` <-> ``or``, a dropped ``not``;
* ``drop``: a statement replaced by ``pass``;
* ``return``: a returned value replaced by ``None`` (or a returned bool negated).

Not mutated: docstrings and other strings, annotations, decorators, ``__all__``, imports.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Mutant", "mutants", "apply"]

_CMP_SWAPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt, ast.GtE), ast.Gt: (ast.GtE, ast.Lt), ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
}
_BIN_SWAPS: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div,), ast.Div: (ast.Mult,),
    ast.FloorDiv: (ast.Div,), ast.Mod: (ast.Mult,), ast.Pow: (ast.Mult,),
}
_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
           ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
           ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}


@dataclass(frozen=True, order=True)
class Mutant:
    """One single-point change. ``site``: index of the node in :func:`_walk`; ``op``/``arg``: what to do."""

    site: int
    op: str
    arg: str
    line: int
    description: str

    @property
    def key(self) -> str:
        return f"{self.site}:{self.op}:{self.arg}"


def _skipped_children(node: ast.AST) -> set[int]:
    """ids of child subtrees that are never mutated (annotations, decorators, docstrings)."""
    skip: set[int] = set()
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        skip.update(id(d) for d in node.decorator_list)
        if not isinstance(node, ast.ClassDef) and node.returns is not None:
            skip.add(id(node.returns))
    if isinstance(node, ast.arguments):
        for a in [*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg]:
            if a is not None and a.annotation is not None:
                skip.add(id(a.annotation))
    if isinstance(node, ast.AnnAssign):
        skip.add(id(node.annotation))
    body = getattr(node, "body", None)
    if isinstance(body, list) and body and _is_docstring(body[0]):
        skip.add(id(body[0]))
    return skip


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, ast.AST | None, str | None, int | None]]:
    """Deterministic pre-order walk: (node, parent, field, index in that field's list)."""
    def rec(node: ast.AST, parent: ast.AST | None, field: str | None, index: int | None) -> Iterator[
            tuple[ast.AST, ast.AST | None, str | None, int | None]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            return
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        yield node, parent, field, index
        skip = _skipped_children(node)
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST) and id(child) not in skip:
                        yield from rec(child, node, name, i)
            elif isinstance(value, ast.AST) and id(value) not in skip:
                yield from rec(value, node, name, None)
    yield from rec(tree, None, None, None)


def _const_variants(v: object) -> list[tuple[str, Any]]:
    if isinstance(v, bool):
        return [("not", not v)]
    if not isinstance(v, int | float):
        return []
    out: list[tuple[str, Any]] = []
    seen = {v}
    zero, one = (0, 1) if isinstance(v, int) else (0.0, 1.0)
    for label, new in (("0", zero), ("1", one), ("+1", v + 1), ("x2", v * 2)):
        if new not in seen:
            seen.add(new)
            out.append((label, new))
    return out


def _site_mutants(node: ast.AST, parent: ast.AST | None, field: str | None) -> Iterator[tuple[str, str, str]]:
    """(op, arg, description) of every mutation at ``node``."""
    if isinstance(node, ast.Compare):
        for i, o in enumerate(node.ops):
            for new_cmp in _CMP_SWAPS.get(type(o), ()):
                yield "cmp", f"{i}:{new_cmp.__name__}", f"{_SYMBOL[type(o)]} -> {_SYMBOL[new_cmp]}"
        yield "cmp", "negate", "comparison negated (not ...)"
    elif isinstance(node, ast.BinOp | ast.AugAssign):
        for new_op in _BIN_SWAPS.get(type(node.op), ()):
            aug = "=" if isinstance(node, ast.AugAssign) else ""
            yield "arith", new_op.__name__, f"{_SYMBOL[type(node.op)]}{aug} -> {_SYMBOL[new_op]}{aug}"
    elif isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            yield "arith", "drop-neg", "unary minus dropped"
        elif isinstance(node.op, ast.Not):
            yield "bool", "drop-not", "not dropped"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("max", "min"):
        other = "min" if node.func.id == "max" else "max"
        yield "call", other, f"{node.func.id}() -> {other}()"
    elif isinstance(node, ast.Constant) and not (isinstance(parent, ast.UnaryOp) and field == "operand"):
        for label, _ in _const_variants(node.value):
            yield "const", label, f"{node.value!r} -> {label}"
    elif isinstance(node, ast.BoolOp):
        flipped = "Or" if isinstance(node.op, ast.And) else "And"
        yield "bool", flipped, f"{'and' if flipped == 'Or' else 'or'} -> {flipped.lower()}"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, int | float) and not isinstance(node.operand.value, bool):
        for label, _ in _const_variants(-node.operand.value):
            yield "const", f"neg{label}", f"-{node.operand.value!r} -> {label}"
    if isinstance(node, ast.stmt) and not isinstance(
            node, ast.Pass | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Global | ast.Nonlocal):
        yield "drop", "pass", f"{type(node).__name__} replaced by pass"
    if isinstance(node, ast.Return) and node.value is not None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
            pass  # covered by const
        elif not (isinstance(node.value, ast.Constant) and node.value.value is None):
            yield "return", "None", "return value -> None"


def mutants(source: str) -> list[Mutant]:
    """Every single-point mutant of ``source`` (in walk order)."""
    tree = ast.parse(source)
    out: list[Mutant] = []
    for site, (node, parent, field, _) in enumerate(_walk(tree)):
        for op, arg, desc in _site_mutants(node, parent, field):
            out.append(Mutant(site, op, arg, getattr(node, "lineno", 0), desc))
    return out


def apply(source: str, mutant: Mutant) -> str:
    """The source of ``mutant`` (re-parsed from ``source``, so the original is never touched)."""
    tree = ast.parse(source)
    for site, (node, parent, field, index) in enumerate(_walk(tree)):
        if site == mutant.site:
            _mutate(node, parent, field, index, mutant)
            ast.fix_missing_locations(tree)
            return ast.unparse(tree) + "\n"
    raise ValueError(f"no site {mutant.site} in this source")


def _replace(parent: ast.AST | None, field: str | None, index: int | None, new: ast.AST) -> None:
    assert parent is not None and field is not None
    if index is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[index] = new


def _mutate(node: ast.AST, parent: ast.AST | None, field: str | None, index: int | None, m: Mutant) -> None:
    if m.op == "cmp":
        assert isinstance(node, ast.Compare)
        if m.arg == "negate":
            _replace(parent, field, index, ast.UnaryOp(ast.Not(), copy.copy(node)))
        else:
            i, name = m.arg.split(":")
            node.ops[int(i)] = getattr(ast, name)()
    elif m.op == "arith" and m.arg == "drop-neg":
        assert isinstance(node, ast.UnaryOp)
        _replace(parent, field, index, node.operand)
    elif m.op == "arith":
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        node.op = getattr(ast, m.arg)()
    elif m.op == "call":
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        node.func = ast.Name(m.arg, ast.Load())
    elif m.op == "const" and m.arg.startswith("neg"):
        assert isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)
        assert isinstance(node.operand.value, int | float)
        value = dict(_const_variants(-node.operand.value))[m.arg[3:]]
        _replace(parent, field, index, ast.Constant(value))
    elif m.op == "const":
        assert isinstance(node, ast.Constant)
        node.value = dict(_const_variants(node.value))[m.arg]
    elif m.op == "bool" and m.arg == "drop-not":
        assert isinstance(node, ast.UnaryOp)
        _replace(parent, field, index, node.operand)
    elif m.op == "bool":
        assert isinstance(node, ast.BoolOp)
        node.op = getattr(ast, m.arg)()
    elif m.op == "drop":
        _replace(parent, field, index, ast.Pass())
    elif m.op == "return":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(None)
    else:
        raise ValueError(f"unknown mutation operator {m.op!r}")
