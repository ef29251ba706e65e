"""The tools agents may call, by name: each runs with the caller's identity (the task's AgentContext) and reads
nothing but what the context gives it. A tool's answer, or its refusal, goes back to the model as text."""

from __future__ import annotations

import ast
import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from ...domain.money import format_credits
from ...ports import AgentContext

MAX_EXPRESSION = 200  # characters
MAX_MAGNITUDE = 10**100  # for every literal and intermediate result
MAX_TEXT = 20_000  # characters of a document or of recalled passages handed back to the model


class ToolRefused(Exception):
    """The tool will not do what was asked (a bad argument, an unsafe expression, nothing found)."""


_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}


def _bounded(value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolRefused("the result is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ToolRefused("a number in the calculation is too large (limit 1e100)")
    return value


def _power(base: int | float, exponent: int | float) -> int | float:
    """base ** exponent, refused before it is computed when the result would pass the bound: a large base to a
    positive power, and as much a small one (0.5, 1e-60) to a negative power, whose float overflowed."""
    if base == 0 and exponent < 0:
        raise ToolRefused("zero cannot be raised to a negative power")
    if base != 0 and abs(base) != 1 and exponent * math.log10(abs(base)) > 100:
        raise ToolRefused("the power is too large (results are limited to 1e100)")
    try:
        result = base ** exponent
    except OverflowError:  # a float power past the bound the estimate above let through by a rounding
        raise ToolRefused("the power is too large (results are limited to 1e100)") from None
    if isinstance(result, complex):
        raise ToolRefused("the result is not a real number")
    return result


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(cast(int | float, node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _bounded(_power(left, right))
        if isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod) and right == 0:
            raise ToolRefused("division by zero")
        return _bounded(_OPERATORS[type(node.op)](left, right))
    if isinstance(node, ast.Name | ast.Call | ast.Attribute | ast.Subscript | ast.Lambda):
        raise ToolRefused("only numbers and + - * / // % ** with parentheses are allowed (no names or calls)")
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        raise ToolRefused(f"the operator {type(node.op).__name__} is not allowed (only + - * / // % **)")
    raise ToolRefused(f"{type(node).__name__} is not allowed in an arithmetic expression")


def arithmetic(expression: str) -> str:
    """The value of an arithmetic expression: numbers, + - * / // % ** and parentheses, nothing else."""
    if len(expression) > MAX_EXPRESSION:
        raise ToolRefused(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as bad:
        raise ToolRefused(f"not an arithmetic expression: {bad.__class__.__name__}") from None
    value = _evaluate(tree)
    return repr(value)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments (an object of strings and integers)
    run: Callable[[AgentContext, dict[str, Any], str], str]  # (the caller's context, arguments, the call's id)

    def schema(self) -> dict[str, Any]:
        """The tool as OpenAI's `tools` entry."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def _object(required: dict[str, dict[str, Any]], optional: dict[str, dict[str, Any]] | None = None) -> dict:
    return {"type": "object", "properties": {**required, **(optional or {})}, "required": list(required),
            "additionalProperties": False}


def _recall(context: AgentContext, args: dict[str, Any], _call: str) -> str:
    passages = context.recall(args["query"], min(int(args.get("limit", 5)), 10))
    if not passages:
        return "nothing in your conversations matches"
    return "\n---\n".join(passages)[:MAX_TEXT]


def _document(context: AgentContext, args: dict[str, Any], _call: str) -> str:
    try:
        text = context.document(args["reference"])
    except LookupError:
        raise ToolRefused(f"there is no document {args['reference']!r}") from None
    return text[:MAX_TEXT]


def _start_image(context: AgentContext, args: dict[str, Any], call: str) -> str:
    """An image task of the calling user's own, priced and held like any, within what is left of the agent task's
    limit (its id is keyed by this agent task and this call, so a resumed run that makes the call again gets the
    same task, not a second one)."""
    n = args.get("n", 1)
    if not 1 <= n <= 4:
        raise ToolRefused("n must be from 1 to 4")
    try:
        started = context.start_image_task(args["prompt"], size=args.get("size"), n=n, call=call)
    except LookupError as refused:
        raise ToolRefused(str(refused)) from None
    return json.dumps({"taskId": started.task_id, "state": started.state, "price": format_credits(started.price),
                       "estimate": format_credits(started.estimate)})


def _look(context: AgentContext, args: dict[str, Any], call: str) -> str:
    try:
        return context.look(args["image"], args["question"], call)[:MAX_TEXT]
    except LookupError as refused:
        raise ToolRefused(str(refused)) from None


TOOLS: dict[str, Tool] = {tool.name: tool for tool in (
    Tool("arithmetic", "Evaluate an arithmetic expression exactly: numbers, + - * / // % ** and parentheses.",
         _object({"expression": {"type": "string"}}), lambda _context, args, _call: arithmetic(args["expression"])),
    Tool("recall", "Search the user's own earlier conversations for passages about a query.",
         _object({"query": {"type": "string"}}, {"limit": {"type": "integer", "minimum": 1, "maximum": 10}}),
         _recall),
    Tool("read_document", "Read a document the user uploaded or attached, by its reference.",
         _object({"reference": {"type": "string"}}), _document),
    Tool("start_image_task", "Start generating images from a prompt, for the user, at the image price the user "
         "pays for any image task (held now, charged for the images delivered). The price counts against this "
         "task's credit limit: refused when it is above what is left of it. Answers the task id, its state and "
         "its price; the images arrive in the user's gallery.",
         _object({"prompt": {"type": "string"}},
                 {"size": {"type": "string"}, "n": {"type": "integer", "minimum": 1, "maximum": 4}}),
         _start_image),
    Tool("look_at_image", "Ask a vision model about one of the user's images: an upload (upload:<id>) or a "
         "generated image (image:<taskId>.<n>). Answers what the model sees; charged like any model call.",
         _object({"image": {"type": "string"}, "question": {"type": "string"}}), _look),
)}


def checked_arguments(tool: Tool, raw: str) -> dict[str, Any]:
    """The call's arguments, if they are a JSON object that fits the tool's schema (no other fields)."""
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        raise ToolRefused("the arguments are not JSON") from None
    if not isinstance(args, dict):
        raise ToolRefused("the arguments must be a JSON object")
    schema = tool.parameters
    extra = set(args) - set(schema["properties"])
    if extra:
        raise ToolRefused(f"unknown arguments: {', '.join(sorted(extra))}")
    missing = [name for name in schema["required"] if name not in args]
    if missing:
        raise ToolRefused(f"missing arguments: {', '.join(missing)}")
    for name, value in args.items():
        field = schema["properties"][name]
        wanted = field["type"]
        if (wanted == "string" and not isinstance(value, str)) or (
                wanted == "integer" and (isinstance(value, bool) or not isinstance(value, int))):
            raise ToolRefused(f"{name} must be {'an integer' if wanted == 'integer' else 'a string'}")
        if wanted == "integer" and not field.get("minimum", value) <= value <= field.get("maximum", value):
            raise ToolRefused(f"{name} must be from {field.get('minimum', '…')} to {field.get('maximum', '…')}")
    return args


def call_tool(context: AgentContext, allowed: tuple[str, ...], name: str, raw_arguments: str, call: str = "") -> str:
    """Run one tool call for the context's user; a refusal comes back as text the model can act on. `call` names
    the call: its place among the run's tool calls and its id in the model's reply (the same when a resumed run
    makes the call again; two calls a server gave one id are two calls)."""
    tool = TOOLS.get(name) if name in allowed else None
    if tool is None:
        return f"error: there is no tool {name!r}"
    try:
        return tool.run(context, checked_arguments(tool, raw_arguments), call)
    except ToolRefused as refused:
        return f"error: {refused}"
