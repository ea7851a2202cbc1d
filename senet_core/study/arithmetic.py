"""Arithmetic on the paper's printed numbers: the claims that follow from other numbers of the paper.

A claim of kind ``arithmetic`` in ``claims.yaml`` is an expression over printed numbers, evaluated by
:func:`evaluate` (a small whitelist of operations, nothing else of Python), and agrees when its value,
rounded to the precision the paper printed, is the printed number (:func:`printed_match`).
"""
from __future__ import annotations

import ast
import operator

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_COMPARE = {ast.Lt: operator.lt, ast.Gt: operator.gt, ast.LtE: operator.le, ast.GtE: operator.ge,
            ast.Eq: operator.eq}
_FUNCTIONS = {"abs": abs, "sum": sum, "min": min, "max": max, "round": round}


def evaluate(expression: str):
    """Evaluate arithmetic on numbers: + - * /, comparisons, lists and abs/sum/min/max/round only."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left, result = ev(node.left), True
            for op, right_node in zip(node.ops, node.comparators):
                right = ev(right_node)
                result = result and _COMPARE[type(op)](left, right)
                left = right
            return result
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                and not node.keywords):
            return _FUNCTIONS[node.func.id](*[ev(a) for a in node.args])
        raise ValueError(f"not allowed in a claim's arithmetic: {ast.dump(node)[:60]}")

    return ev(ast.parse(expression.strip(), mode="eval"))


def decimals(printed) -> int:
    """How many decimals the paper printed a number with."""
    text = str(printed)
    return len(text.split(".")[1]) if "." in text else 0


def printed_match(value: float, printed) -> bool:
    """Ours rounded to the precision the paper printed equals the printed number."""
    return round(float(value), decimals(printed)) == float(printed)


def check_arithmetic(ours: dict) -> tuple[str, str]:
    """``(what we computed, agrees)`` of an arithmetic claim: its ``expression`` against ``expect``
    (a number, or a list of them for an expression giving a list), shown with its ``unit``."""
    value = evaluate(ours["expression"])
    expect = ours["expect"]
    values, expects = (value, expect) if isinstance(expect, list) else ([value], [expect])
    if len(values) != len(expects):
        raise ValueError(f"expression gives {len(values)} values, expect lists {len(expects)}")
    units = ours.get("unit", "")
    units = units if isinstance(units, list) else [units] * len(values)
    shown = [(str(int(v)) if isinstance(v, (int, bool)) or float(v).is_integer() and decimals(e) == 0
              else f"{v:.{decimals(e) + 1}f}") + (f" {u}" if u else "") for v, e, u in zip(values, expects, units)]
    ok = all(printed_match(v, e) for v, e in zip(values, expects))
    return ", ".join(shown), "yes" if ok else "no"
