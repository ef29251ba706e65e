"""Realtime Database security rules (database.rules.json), evaluated as Realtime Database (and targaryen) does.

The rule expression language is tokenized and parsed by recursive descent into a small tree, then evaluated with
JavaScript's semantics where they matter: strict equality without coercion, comparisons only between two strings,
two numbers or nulls, `+` joining strings, member access on null giving null. An expression that fails (a type
error, calling what is not a method) evaluates as false, as in Realtime Database. Nothing is ever `eval`ed.

A rules file is typed as it loads, as targaryen types it (and Realtime Database, refusing to deploy): a rule that is
not certainly a boolean (`auth.uid`, `data.val()`, `'yes'`), or whose parts cannot be typed (`auth.uid && true`, a
member no snapshot or string has, an unknown variable), is refused then, not denied at every evaluation.

Reads cascade: the first `.read` granting on the way from the root to the path allows it. A write at a path is
permitted by the first `.write` that grants on the way from the root to it, and valid when every `.validate` on the
way (where the new data exists) and every `.validate` below it, on each node of the new data, holds. A multi-path
update is allowed when each of its paths is, all evaluated against the tree as it would be after the whole update.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Reader = Callable[[tuple[str, ...]], Any]  # the value at a path (as a tuple of keys), None where there is none


class RuleError(Exception):
    """A rule that cannot be parsed, or an expression that fails while evaluated (which denies)."""


# ---------------------------------------------------------------------------------------------------- tokenizer

_PUNCTUATION = ("===", "!==", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")",
                "[", "]", ".", ",", "?", ":")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
DIGITS = frozenset("0123456789")
_REGEX = re.compile(r"/((?:\\.|\[(?:\\.|[^\]\\])*\]|[^/\\\n\[])+)/([a-z]*)")


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "str", "regex", "ident", "op", "end"
    value: Any
    at: int


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(source):
        c = source[i]
        if c.isspace():
            i += 1
            continue
        previous = tokens[-1] if tokens else None
        operand_expected = previous is None or (previous.kind == "op" and previous.value not in (")", "]"))
        if c == "/" and operand_expected:
            match = _REGEX.match(source, i)
            if match is None:
                raise RuleError(f"unterminated regular expression at {i}")
            tokens.append(Token("regex", (match.group(1), match.group(2)), i))
            i = match.end()
            continue
        if c in "'\"":
            text, i = _string(source, i)
            tokens.append(Token("str", text, i))
            continue
        if c in DIGITS or (c == "." and i + 1 < len(source) and source[i + 1] in DIGITS):
            match = _NUMBER.match(source, i)
            assert match is not None
            literal = match.group()
            tokens.append(Token("num", float(literal) if any(ch in literal for ch in ".eE") else int(literal), i))
            i = match.end()
            continue
        if match := _IDENT.match(source, i):
            tokens.append(Token("ident", match.group(), i))
            i = match.end()
            continue
        for op in _PUNCTUATION:
            if source.startswith(op, i):
                tokens.append(Token("op", op, i))
                i += len(op)
                break
        else:
            raise RuleError(f"unexpected {c!r} at {i}")
    tokens.append(Token("end", None, len(source)))
    return tokens


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _string(source: str, i: int) -> tuple[str, int]:
    quote, i = source[i], i + 1
    out: list[str] = []
    while i < len(source):
        c = source[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(source):
            out.append(_ESCAPES.get(source[i + 1], source[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    raise RuleError("unterminated string")


# ------------------------------------------------------------------------------------------------------- parser

_BINARY_LEVELS: tuple[tuple[str, ...], ...] = (("===", "!==", "==", "!="), ("<", "<=", ">", ">="), ("+", "-"),
                                               ("*", "/", "%"))


class Parser:
    """Expression := Conditional; JavaScript's precedence. Nodes are tuples: (kind, ...)."""

    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.i = 0

    @classmethod
    def parse(cls, source: str) -> tuple:
        parser = cls(source)
        node = parser.conditional()
        if parser.peek().kind != "end":
            raise RuleError(f"unexpected {parser.peek().value!r} at {parser.peek().at}")
        return node

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self, op: str | None = None) -> Token:
        token = self.tokens[self.i]
        if op is not None and not (token.kind == "op" and token.value == op):
            raise RuleError(f"expected {op!r} at {token.at}, found {token.value!r}")
        self.i += 1
        return token

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.value in ops

    def conditional(self) -> tuple:
        test = self.logical("||")
        if self.at_op("?"):
            self.take("?")
            yes = self.conditional()
            self.take(":")
            return ("if", test, yes, self.conditional())
        return test

    def logical(self, op: str) -> tuple:
        left = self.logical("&&") if op == "||" else self.binary(0)
        while self.at_op(op):
            self.take()
            right = self.logical("&&") if op == "||" else self.binary(0)
            left = (op, left, right)
        return left

    def binary(self, level: int) -> tuple:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.at_op(*_BINARY_LEVELS[level]):
            op = self.take().value
            left = ("bin", op, left, self.binary(level + 1))
        return left

    def unary(self) -> tuple:
        if self.at_op("!", "-"):
            op = self.take().value
            return ("unary", op, self.unary())
        return self.postfix()

    def postfix(self) -> tuple:
        node = self.primary()
        while True:
            if self.at_op("."):
                self.take()
                name = self.take()
                if name.kind != "ident":
                    raise RuleError(f"expected a name after '.' at {name.at}")
                node = ("member", node, ("lit", name.value))
            elif self.at_op("["):
                self.take()
                key = self.conditional()
                self.take("]")
                node = ("member", node, key)
            elif self.at_op("("):
                self.take()
                node = ("call", node, self.arguments(")"))
            else:
                return node

    def arguments(self, closing: str) -> list[tuple]:
        args: list[tuple] = []
        if not self.at_op(closing):
            args.append(self.conditional())
            while self.at_op(","):
                self.take()
                args.append(self.conditional())
        self.take(closing)
        return args

    def primary(self) -> tuple:
        token = self.take()
        if token.kind in ("num", "str"):
            return ("lit", token.value)
        if token.kind == "regex":
            pattern, flags = token.value
            return ("lit", Regex(pattern, flags))
        if token.kind == "ident":
            if token.value in ("true", "false"):
                return ("lit", token.value == "true")
            if token.value == "null":
                return ("lit", None)
            return ("name", token.value)
        if token.kind == "op" and token.value == "(":
            inner = self.conditional()
            self.take(")")
            return inner
        if token.kind == "op" and token.value == "[":
            return ("array", self.arguments("]"))
        raise RuleError(f"unexpected {token.value!r} at {token.at}")


# ------------------------------------------------------------------------------------------------------- values

class Regex:
    def __init__(self, pattern: str, flags: str) -> None:
        if set(flags) - {"i"}:
            raise RuleError(f"unsupported regular expression flags {flags!r}")
        try:  # JavaScript's meaning: `$` only at the very end, `\d` `\w` `\s` in ASCII
            self.compiled = re.compile(_js_ends(pattern), re.ASCII | (re.IGNORECASE if "i" in flags else 0))
        except re.error as error:
            raise RuleError(f"bad regular expression /{pattern}/: {error}") from error


def _js_ends(pattern: str) -> str:
    """`$` outside a character class matches before a final newline in Python, only at the end in JavaScript."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        out.append(r"\Z" if c == "$" and not in_class else c)
        i += 1
    return "".join(out)


class Method:
    """A snapshot's or a string's method. Arguments past the `takes` it declares are ignored, as JavaScript ignores
    them (`data.exists(1)` is `data.exists()`)."""

    def __init__(self, function: Callable[..., Any], takes: int) -> None:
        self.function, self.takes = function, takes

    def __call__(self, *args: Any) -> Any:
        return self.function(*args[:self.takes])


class Snapshot:
    """RuleDataSnapshot: data at a path of one version of the tree (before or after the write)."""

    def __init__(self, read: Reader, path: tuple[str, ...] | None) -> None:
        self.read = read
        self.path = path

    def value(self) -> Any:
        return None if self.path is None else self.read(self.path)

    def member(self, name: str) -> Any:
        method = _SNAPSHOT_METHODS.get(name)
        return Method(getattr(self, method[0]), method[1]) if method is not None else None

    def exists(self) -> bool:
        return self.value() is not None

    def priority(self) -> None:
        return None  # priorities are not kept

    def is_number(self) -> bool:
        return _kind(self.value()) == "number"

    def is_string(self) -> bool:
        return isinstance(self.value(), str)

    def is_boolean(self) -> bool:
        return isinstance(self.value(), bool)

    def child(self, path: Any) -> Snapshot:
        if not isinstance(path, str):
            raise RuleError("child() takes a path string")
        parts = tuple(p for p in path.split("/") if p)
        return Snapshot(self.read, None if self.path is None else self.path + parts)

    def parent(self) -> Snapshot:
        if not self.path:  # the root has none: an error, which denies (as targaryen), not a snapshot of nothing
            raise RuleError("the root has no parent")
        return Snapshot(self.read, self.path[:-1])

    def has_child(self, path: Any) -> bool:
        return self.child(path).value() is not None

    def has_children(self, names: Any = None) -> bool:
        value = self.value()
        if names is None:
            return isinstance(value, dict) and bool(value)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RuleError("hasChildren() takes a list of names")
        return all(self.has_child(name) for name in names)


_SNAPSHOT_METHODS = {  # a rule's name for it: this class's, and how many arguments it takes
    "val": ("value", 0), "exists": ("exists", 0), "child": ("child", 1), "parent": ("parent", 0),
    "hasChild": ("has_child", 1), "hasChildren": ("has_children", 1), "getPriority": ("priority", 0),
    "isNumber": ("is_number", 0), "isString": ("is_string", 0), "isBoolean": ("is_boolean", 0)}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict | list):
        return "Object"
    return type(value).__name__


def _truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    if _kind(value) == "number":
        return value != 0 and not math.isnan(value)
    return True


def js_string(value: Any) -> str:
    if _kind(value) == "number":
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return str(value)
    return str(value)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _string_member(text: str, name: str) -> Any:
    def needs_string(function: Callable[..., Any], takes: int = 1) -> Method:
        def checked(*args: Any) -> Any:
            if not all(isinstance(a, str) for a in args):
                raise RuleError(f"{name}() takes strings")
            return function(*args)
        return Method(checked, takes)

    def matches(regex: Any) -> bool:
        if not isinstance(regex, Regex):
            raise RuleError("matches() takes a regular expression")
        return regex.compiled.search(text) is not None

    members: dict[str, Any] = {
        "length": lambda: _utf16_length(text),
        "contains": lambda: needs_string(lambda s: s in text),
        "beginsWith": lambda: needs_string(lambda s: text.startswith(s)),
        "endsWith": lambda: needs_string(lambda s: text.endswith(s)),
        "replace": lambda: needs_string(lambda old, new: text.replace(old, new), 2),
        "toLowerCase": lambda: Method(text.lower, 0),
        "toUpperCase": lambda: Method(text.upper, 0),
        "matches": lambda: Method(matches, 1),
    }
    return members[name]() if name in members else None


def _member(target: Any, key: Any) -> Any:
    if target is None:
        return None
    if isinstance(target, str):
        return _string_member(target, js_string(key))
    if isinstance(target, Snapshot):
        return target.member(key) if isinstance(key, str) else None
    if isinstance(target, dict):
        return target.get(js_string(key))
    if isinstance(target, list):
        if key == "length":
            return len(target)
        return target[key] if isinstance(key, int) and 0 <= key < len(target) else None
    return None


_EQUALITY = {"string", "number", "boolean", "null", "Object"}
_ORDERED = {"string", "number", "null"}


def _binary(op: str, left: Any, right: Any) -> Any:
    lk, rk = _kind(left), _kind(right)
    if op in ("===", "==", "!==", "!="):
        if lk not in _EQUALITY or rk not in _EQUALITY:
            raise RuleError(f"{op} cannot compare {lk} with {rk}")
        same = left is right if "Object" in (lk, rk) else (lk == rk and left == right)
        return same if op in ("===", "==") else not same
    if op in ("<", "<=", ">", ">="):
        if lk not in _ORDERED or rk not in _ORDERED or lk != rk:
            raise RuleError(f"{op} cannot order {lk} and {rk}")
        if lk == "null":
            return op in ("<=", ">=")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    if op == "+":
        if lk not in ("string", "number") or rk not in ("string", "number"):
            raise RuleError(f"+ cannot add {lk} and {rk}")
        if "string" in (lk, rk):
            return js_string(left) + js_string(right)
        return left + right
    if lk != "number" or rk != "number":
        raise RuleError(f"{op} takes numbers")
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return math.nan if right == 0 else left / right
    return math.nan if right == 0 else math.fmod(left, right)


def evaluate(node: tuple, scope: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "name":
        if node[1] not in scope:
            raise RuleError(f"unknown variable {node[1]}")
        return scope[node[1]]
    if kind == "&&":
        left = evaluate(node[1], scope)
        return evaluate(node[2], scope) if _truthy(left) else left
    if kind == "||":
        left = evaluate(node[1], scope)
        return left if _truthy(left) else evaluate(node[2], scope)
    if kind == "if":
        return evaluate(node[2] if _truthy(evaluate(node[1], scope)) else node[3], scope)
    if kind == "unary":
        value = evaluate(node[2], scope)
        if node[1] == "!":
            return not _truthy(value)
        if _kind(value) != "number":
            raise RuleError("- takes a number")
        return -value
    if kind == "bin":
        return _binary(node[1], evaluate(node[2], scope), evaluate(node[3], scope))
    if kind == "member":
        return _member(evaluate(node[1], scope), evaluate(node[2], scope))
    if kind == "call":
        callee = evaluate(node[1], scope)
        if not isinstance(callee, Method):
            raise RuleError("only methods can be called")
        return callee(*(evaluate(arg, scope) for arg in node[2]))
    if kind == "array":
        return [evaluate(item, scope) for item in node[1]]
    raise RuleError(f"unknown node {kind}")


def holds(expression: tuple, scope: dict[str, Any]) -> bool:
    """True only when the expression evaluates to exactly `true`; any error denies."""
    try:
        return evaluate(expression, scope) is True
    except (RuleError, RecursionError, TypeError, ValueError, OverflowError):
        return False


# ------------------------------------------------------------------------------------------------------- types

@dataclass(frozen=True)
class Signature:
    """A method's type: its arguments' types (none checked when empty; None for hasChildren's) and its result's."""

    args: tuple[str, ...] | None
    returns: str


Type = str | Signature  # "boolean", "string", "number", "null", "RegExp", "array", "RuleDataSnapshot", "Query",
# "primitive" (a value: `val()`, known only when evaluated), "any" (auth and its members), or a method

_FUZZY = ("any", "primitive")
_PRIMITIVES = ("string", "number", "boolean", "null", "primitive")
_MEMBERS: dict[str, dict[str, Type]] = {
    "Query": {"orderByKey": "boolean", "orderByPriority": "boolean", "orderByValue": "boolean",
              "orderByChild": "string", "startAt": "primitive", "endAt": "primitive", "equalTo": "primitive",
              "limitToFirst": "number", "limitToLast": "number"},
    "string": {"length": "number", "contains": Signature(("string",), "boolean"),
               "beginsWith": Signature(("string",), "boolean"), "endsWith": Signature(("string",), "boolean"),
               "replace": Signature(("string", "string"), "string"), "toLowerCase": Signature((), "string"),
               "toUpperCase": Signature((), "string"), "matches": Signature(("RegExp",), "boolean")},
    "RuleDataSnapshot": {"val": Signature((), "primitive"), "child": Signature(("string",), "RuleDataSnapshot"),
                         "parent": Signature((), "RuleDataSnapshot"), "hasChild": Signature(("string",), "boolean"),
                         "hasChildren": Signature(None, "boolean"), "exists": Signature((), "boolean"),
                         "getPriority": Signature((), "any"), "isNumber": Signature((), "boolean"),
                         "isString": Signature((), "boolean"), "isBoolean": Signature((), "boolean")},
}
_EQUATABLE = ("string", "number", "boolean", "null", "Object")
_ADDABLE = ("string", "number")
_ORDERABLE = ("string", "number", "null")


def rule_scope(kind: str, wildcards: tuple[str, ...]) -> dict[str, Type]:
    """The variables a rule of `kind` (".read", ".write", ".validate") sees, and their types."""
    scope: dict[str, Type] = {name: "string" for name in wildcards}
    scope.update(auth="any", root="RuleDataSnapshot", data="RuleDataSnapshot", now="number", query="Query")
    if kind != ".read":
        scope["newData"] = "RuleDataSnapshot"
    return scope


def _shown(found: Type) -> str:
    return found if isinstance(found, str) else "a method"


def _expect(found: Type, allowed: tuple[str, ...], what: str, *, certain: bool = False) -> str:
    """`found` must be one of `allowed`; a type known only when evaluated passes unless it must be `certain`."""
    if isinstance(found, str) and (found in allowed or (not certain and found in _FUZZY)):
        return found
    raise RuleError(f"{what} must be {' or '.join(allowed)}, not {_shown(found)}")


def infer(node: tuple, scope: dict[str, Type]) -> Type:
    """The type of an expression, as targaryen (and Realtime Database, deploying) infers it; RuleError where the
    expression cannot be typed: a boolean operator on what may not be a boolean, a member no such value has..."""
    kind = node[0]
    if kind == "lit":
        return "RegExp" if isinstance(node[1], Regex) else _kind(node[1])
    if kind == "name":
        if node[1] not in scope:
            raise RuleError(f"unknown variable {node[1]}")
        return scope[node[1]]
    if kind in ("&&", "||"):
        for side in node[1:]:
            _expect(infer(side, scope), ("boolean",), f"an operand of {kind}", certain=True)
        return "boolean"
    if kind == "if":
        _expect(infer(node[1], scope), ("boolean",), "the condition of ?", certain=True)
        yes, no = infer(node[2], scope), infer(node[3], scope)
        if yes == no and isinstance(yes, str):
            return yes
        return "primitive" if yes in _PRIMITIVES and no in _PRIMITIVES else "any"
    if kind == "unary":
        if node[1] == "!":
            _expect(infer(node[2], scope), ("boolean",), "the operand of !", certain=True)
            return "boolean"
        _expect(infer(node[2], scope), ("number",), "the operand of -")
        return "number"
    if kind == "bin":
        return _infer_binary(node[1], infer(node[2], scope), infer(node[3], scope))
    if kind == "member":
        return _infer_member(node, scope)
    if kind == "call":
        return _infer_call(node, scope)
    if kind == "array":
        for item in node[1]:
            infer(item, scope)
        return "array"
    raise RuleError(f"unknown node {kind}")


def _infer_binary(op: str, left: Type, right: Type) -> Type:
    equality, ordering = op in ("===", "!==", "==", "!="), op in ("<", "<=", ">", ">=")
    allowed = _EQUATABLE if equality else _ORDERABLE if ordering else _ADDABLE if op == "+" else ("number",)
    _expect(left, allowed, f"the left operand of {op}")
    _expect(right, allowed, f"the right operand of {op}")
    if ordering and left != right and left not in _FUZZY and right not in _FUZZY:
        raise RuleError(f"{op} cannot order {left} and {right}")
    if equality or ordering:
        return "boolean"
    if op == "+":
        return "string" if "string" in (left, right) else "number" if left == right == "number" else "primitive"
    return "number"


def _infer_member(node: tuple, scope: dict[str, Type], *, as_string: bool = False) -> Type:
    """`object.name` or `object[key]` (a literal key but for auth's members); `as_string` when it is called and its
    object may be a string."""
    target, key = node[1], node[2]
    owner = _expect(infer(target, scope), ("Query", "RuleDataSnapshot", "string"), "what has members")
    if owner == "primitive" or as_string:
        owner = "string"  # a value's members are a string's
    infer(key, scope)
    if owner == "any":
        return "any"
    if key[0] != "lit" or not isinstance(key[1], str) or key[1] not in _MEMBERS[owner]:
        raise RuleError(f"{owner} has no member {key[1] if key[0] == 'lit' else '[...]'}")
    return _MEMBERS[owner][key[1]]


def _infer_call(node: tuple, scope: dict[str, Type]) -> Type:
    callee, args = node[1], node[2]
    found = infer(callee, scope)
    arg_types = [infer(arg, scope) for arg in args]
    if found in _FUZZY and callee[0] == "member":
        found = _infer_member(callee, scope, as_string=True)  # `auth.name.matches(...)`: a string's method
    if not isinstance(found, Signature):
        raise RuleError("only methods can be called")
    if found.args is None:  # hasChildren(), or hasChildren([names])
        if len(args) > 1 or (args and (args[0][0] != "array" or not args[0][1])):
            raise RuleError("hasChildren takes nothing or a list of names")
        for item in args[0][1] if args else ():
            _expect(infer(item, scope), ("string",), "a name given to hasChildren")
        return found.returns
    if found.args and len(args) != len(found.args):
        raise RuleError(f"a method expects {len(found.args)} arguments, got {len(args)}")
    for i, (expected, actual) in enumerate(zip(found.args, arg_types, strict=False), 1):
        _expect(actual, (expected,), f"argument {i}")
    return found.returns


# -------------------------------------------------------------------------------------------------- the rule tree

def at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def with_value(value: Any, path: tuple[str, ...], new: Any) -> Any:
    """A copy of `value` with `new` at `path` (shallow copies along the path; empty objects and nulls pruned)."""
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else {}
    child = with_value(copy.get(path[0]), path[1:], new)
    if child is None or child == {}:
        copy.pop(path[0], None)
    else:
        copy[path[0]] = child
    return copy or None


_WRITTEN = object()  # the key, in an Overlay's tree of written paths, of what was written at a path


class Overlay:
    """The tree as it would be after some writes: reads from `base`, with each (path, value) written over it, in
    order. The paths written are kept as a tree of their keys, so that a read looks only at the writes at, above and
    below its path: each read scanned every write, and judging an update of n paths, O(n) reads, took O(n²)."""

    def __init__(self, base: Reader, writes: list[tuple[tuple[str, ...], Any]]) -> None:
        self.base = base
        self.writes = writes
        self.written: dict[Any, Any] = {}
        self.nested = False  # whether a path written is below another (not an update's: the order then matters)
        for where, new in writes:
            node = self.written
            for key in where:
                self.nested = self.nested or _WRITTEN in node
                node = node.setdefault(key, {})
            self.nested = self.nested or bool(node)
            node[_WRITTEN] = new

    def __call__(self, path: tuple[str, ...]) -> Any:
        if self.nested:
            return self._in_order(path)
        node = self.written
        for depth, key in enumerate(path):
            if _WRITTEN in node:  # written above the path
                return at(node[_WRITTEN], path[depth:])
            if key not in node:  # nothing written at, above or below it
                return self.base(path)
            node = node[key]
        if _WRITTEN in node:  # written at the path (and nothing below it)
            return node[_WRITTEN]
        return _merged(self.base(path), node)  # written below it

    def _in_order(self, path: tuple[str, ...]) -> Any:
        value = self.base(path)
        for where, new in self.writes:
            if where[:len(path)] == path:  # written at or below the path
                value = with_value(value, where[len(path):], new)
            elif path[:len(where)] == where:  # written above it
                value = at(new, path[len(where):])
        return value


def _merged(value: Any, written: dict[Any, Any]) -> Any:
    """`value` with what `written` (an Overlay's tree of paths, none at its top) wrote below it; as `with_value`
    leaves it, empty objects and nulls pruned."""
    merged = dict(value) if isinstance(value, dict) else {}
    for key, below in written.items():
        new = below[_WRITTEN] if _WRITTEN in below else _merged(merged.get(key), below)
        if new is None or new == {}:
            merged.pop(key, None)
        else:
            merged[key] = new
    return merged or None


@dataclass
class RuleNode:
    read: tuple | None
    write: tuple | None
    validate: tuple | None
    index_on: tuple[str, ...]
    children: dict[str, RuleNode]
    wildcard: tuple[str, RuleNode] | None


def _compile(node: dict[str, Any], kind: str, where: str, bound: tuple[str, ...]) -> tuple | None:
    """The rule `kind` of a node, parsed and typed: refused, as Realtime Database refuses to deploy it, unless it is
    certainly a boolean (`auth.uid`, `data.val()` or `'yes'` might deny at every evaluation, never grant)."""
    rule = node.get(kind)
    if rule is None:
        return None
    if isinstance(rule, bool):
        return ("lit", rule)
    if not isinstance(rule, str):
        raise RuleError(f"{where}/{kind}: a rule is a string or a boolean")
    try:
        parsed = Parser.parse(rule)
        found = infer(parsed, rule_scope(kind, bound))
    except RuleError as error:
        raise RuleError(f"{where}/{kind}: {error}") from error
    if found != "boolean":
        raise RuleError(f"{where}/{kind}: a rule must evaluate to a boolean, not {_shown(found)}")
    return parsed


def compile_rules(node: Any, where: str = "rules", bound: tuple[str, ...] = ()) -> RuleNode:
    """The rules of `node` and below it; `bound`, the $variables of the path to it (its own name if it is one)."""
    if not isinstance(node, dict):
        raise RuleError(f"{where}: rules are objects")
    wildcards = [k for k in node if k.startswith("$")]
    if len(wildcards) > 1:
        raise RuleError(f"{where}: only one $variable per level")
    if wildcards and wildcards[0] in bound:  # it would hide the one above (Realtime Database refuses it too)
        raise RuleError(f"{where}: {wildcards[0]} is a $variable of the path above already")
    index_on = node.get(".indexOn", ())
    return RuleNode(
        read=_compile(node, ".read", where, bound), write=_compile(node, ".write", where, bound),
        validate=_compile(node, ".validate", where, bound),
        index_on=(index_on,) if isinstance(index_on, str) else tuple(index_on),
        children={k: compile_rules(v, f"{where}/{k}", bound) for k, v in node.items() if not k.startswith((".", "$"))},
        wildcard=(wildcards[0], compile_rules(node[wildcards[0]], f"{where}/{wildcards[0]}", (*bound, wildcards[0])))
        if wildcards else None)


class Rules:
    """database.rules.json, compiled once. `auth` is Realtime Database's auth variable (None when signed out)."""

    def __init__(self, definition: dict[str, Any]) -> None:
        if not isinstance(definition, dict) or set(definition) != {"rules"}:
            raise RuleError("a rules file holds one object with the single member \"rules\"")
        self.root = compile_rules(definition["rules"])

    def _walk(self, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], RuleNode, dict[str, str]]]:
        """The rule nodes from the root down the path, with the $variables bound so far (stops where none is)."""
        node: RuleNode = self.root
        bound: dict[str, str] = {}
        yield (), node, bound
        for depth, key in enumerate(path, 1):
            if key in node.children:
                node = node.children[key]
            elif node.wildcard is not None:
                name, node = node.wildcard
                bound = {**bound, name: key}
            else:
                return
            yield path[:depth], node, bound

    def indexed(self, path: tuple[str, ...], child: str) -> bool:
        """Whether `.indexOn` at the path names `child` (".value" for ordering by value)."""
        for where, node, _ in self._walk(path):
            if where == path:
                return child in node.index_on
        return False

    def can_read(self, auth: dict[str, Any] | None, path: tuple[str, ...], data: Reader, now: int) -> bool:
        scope: dict[str, Any] = {"auth": auth, "now": now, "root": Snapshot(data, ()), "query": {}}
        for where, node, bound in self._walk(path):
            if node.read is not None and holds(node.read, {**scope, **bound, "data": Snapshot(data, where)}):
                return True
        return False

    def can_write(self, auth: dict[str, Any] | None, path: tuple[str, ...], value: Any, data: Reader,
                  now: int) -> bool:
        return self.can_update(auth, path, {"": value}, data, now)

    def can_update(self, auth: dict[str, Any] | None, path: tuple[str, ...], patch: dict[str, Any], data: Reader,
                   now: int) -> bool:
        """Each (relative path, value) of `patch` written at once below `path` (a set is the patch {"": value})."""
        writes = [(path + tuple(p for p in key.split("/") if p), value) for key, value in patch.items()]
        after = Overlay(data, writes)
        return all(self._write_allowed(auth, where, data, after, now) for where, _ in writes)

    def _write_allowed(self, auth: dict[str, Any] | None, path: tuple[str, ...], before: Reader, after: Reader,
                       now: int) -> bool:
        scope: dict[str, Any] = {"auth": auth, "now": now, "root": Snapshot(before, ())}
        permitted = False
        deepest: tuple[RuleNode, dict[str, str]] | None = None
        for where, node, bound in self._walk(path):
            local = {**scope, **bound, "data": Snapshot(before, where), "newData": Snapshot(after, where)}
            if permitted and after(where) is None:
                break
            if not permitted and node.write is not None:
                permitted = holds(node.write, local)
            # the new data is read only where a rule needs it (never the whole tree at the root for nothing)
            if node.validate is not None and after(where) is not None and not holds(node.validate, local):
                return False
            if where == path:
                deepest = (node, bound)
        if not permitted:
            return False
        written = after(path)
        if deepest is None or not isinstance(written, dict):
            return True
        return self._valid_below(deepest[0], deepest[1], path, written, scope, before, after)

    def _valid_below(self, node: RuleNode, bound: dict[str, str], path: tuple[str, ...], value: dict[str, Any],
                     scope: dict[str, Any], before: Reader, after: Reader) -> bool:
        for key, child_value in value.items():
            if key in node.children:
                child, child_bound = node.children[key], bound
            elif node.wildcard is not None:
                child, child_bound = node.wildcard[1], {**bound, node.wildcard[0]: key}
            else:
                continue
            if child_value is None:
                continue
            where = (*path, key)
            local = {**scope, **child_bound, "data": Snapshot(before, where), "newData": Snapshot(after, where)}
            if child.validate is not None and not holds(child.validate, local):
                return False
            if isinstance(child_value, dict) and not self._valid_below(child, child_bound, where, child_value, scope,
                                                                       before, after):
                return False
        return True
