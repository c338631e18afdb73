"""COMPOSITE usage metrics: arithmetic over other metrics, parsed into a validated tree.

`input_tokens + output_tokens`, `errors / calls`, `100 * errors / (calls + 1)`: metric names
(identifiers), numbers, `+ - * /`, unary minus and parentheses. The text is read by Python's
parser (`ast`, never evaluated) and converted into the frozen tree below, which is all that is
evaluated. A missing operand (a metric with no value) makes the result null, and so does a
zero denominator. The arithmetic is decimal: operands are the exact values of their metrics
(sums of fractional properties included) and numbers are read as written, so `a + b` is as
exact as `a` and `b` (0.1 + 0.2 is 0.3); a quotient keeps PRECISION significant digits.
A number is a finite float's size at most, with at most 1,000 decimal places (app/limits.py).
"""

from __future__ import annotations

import ast
import decimal
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from app.errors import UserError
from app.limits import literal_problem

MAX_LENGTH = 1_000
MAX_NODES = 100
OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
PRECISION = 34  # significant digits of a quotient (IEEE 754 decimal128's)


@dataclass(frozen=True)
class Number:
    value: Decimal


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Negate:
    item: Expr


@dataclass(frozen=True)
class BinaryOp:
    op: str  # + - * /
    left: Expr
    right: Expr


Expr = Number | Ref | Negate | BinaryOp
ACCEPTED = "metric names, numbers, + - * /, unary minus and parentheses"


def _number(node: ast.Constant, value: int | float, source: str) -> Number:
    """A number as written (Python's own reading makes `1e-999` zero and
    `1.00000000000000001` one): 0.1 is one tenth; an integer in hex or octal by its value."""
    written = ast.get_source_segment(source, node) or repr(value)
    try:
        number = Decimal(written)
    except decimal.InvalidOperation:
        number = Decimal(value)  # 0x1F, 0o17, 0b101: integers Decimal does not read
    if not number.is_finite() or math.isinf(float(number)):
        raise UserError(
            f"expression: the number {written[:40]} is beyond what a Float holds (at most about "
            f"1.8E+308 in absolute value); accepted: {ACCEPTED}"
        )
    if problem := literal_problem(number):
        raise UserError(f"expression: the number {written[:40]} {problem}")
    return Number(number)


def _convert(node: ast.AST, source: str) -> Expr:
    match node:
        case ast.Constant(value=bool() as flag):
            raise UserError(f"expression: {flag} is not a number; accepted: {ACCEPTED}")
        case ast.Constant(value=int() | float() as value):
            return _number(node, value, source)
        case ast.Name(id=name):
            return Ref(name)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return Negate(_convert(operand, source))
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _convert(operand, source)
        case ast.BinOp(op=op, left=left, right=right) if type(op) in OPERATORS:
            return BinaryOp(OPERATORS[type(op)], _convert(left, source), _convert(right, source))
    shown = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
    raise UserError(f"expression: {shown!r} is not allowed; accepted: {ACCEPTED}")


def parse_expression(text: str) -> Expr:
    """The tree of `text`, or a user error saying what is not accepted."""
    if len(text) > MAX_LENGTH:
        raise UserError(f"expression is longer than {MAX_LENGTH} characters")
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        raise UserError(f"expression {text!r} does not parse; accepted: {ACCEPTED}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise UserError(f"expression has more than {MAX_NODES} parts")
    return _convert(tree.body, source)


def _refs(expr: Expr) -> Iterator[str]:
    match expr:
        case Ref(name):
            yield name
        case Negate(item):
            yield from _refs(item)
        case BinaryOp(_, left, right):
            yield from _refs(left)
            yield from _refs(right)


def references(expr: Expr) -> tuple[str, ...]:
    """The metric names the expression reads, in order of first use."""
    return tuple(dict.fromkeys(_refs(expr)))


def evaluate(expr: Expr, values: Mapping[str, Decimal | None]) -> Decimal | None:
    """The expression's value; null when an operand is null or a denominator is zero."""
    with decimal.localcontext(prec=PRECISION):
        return _evaluate(expr, values)


def _evaluate(expr: Expr, values: Mapping[str, Decimal | None]) -> Decimal | None:
    match expr:
        case Number(value):
            return value
        case Ref(name):
            return values.get(name)
        case Negate(item):
            inner = _evaluate(item, values)
            return None if inner is None else -inner
        case BinaryOp(op, left, right):
            a, b = _evaluate(left, values), _evaluate(right, values)
            if a is None or b is None:
                return None
            match op:
                case "+":
                    return a + b
                case "-":
                    return a - b
                case "*":
                    return a * b
                case _:
                    return None if b == 0 else a / b
    raise AssertionError(expr)
