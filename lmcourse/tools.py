"""Tool use: a generation loop that stops on a tool call, runs the tool, and continues.

Chapter 15b teaches this file.

A model is taught (by its training data) to write a call such as ``<calc 12+34>`` where it
needs a tool. The loop generates with the closing marker as a stop sequence (a *stop
string*, :func:`lmcourse.generate.generate`'s ``stop_strings``); when generation stops
there, the loop parses the call that the model just wrote, runs the named tool, appends the
tool's result to the text, and lets the model continue from there. The model never
computes the result itself: it only has to learn where to call and what to do with the
answer.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from lmcourse.checks import require_callable, require_generator, require_instance, require_int
from lmcourse.generate import generate
from lmcourse.model import GPT
from lmcourse.sampling import SamplingConfig

__all__ = ["ToolCall", "ToolRun", "calculator", "generate_with_tools", "parse_call"]

_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def calculator(expression: str) -> str:
    """Evaluate integer arithmetic (``+ - * // %``, parentheses, unary minus) safely.

    Only those operations on integer literals are allowed (no names, calls or attributes),
    so a model cannot make the tool run arbitrary code; zero-padded numbers such as ``07``
    are read as decimals. Returns the result as a string, or ``"error"`` for anything else
    (including division by zero).
    """

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Mult) and abs(left) * abs(right) > 10**30:
                raise ValueError("result too large")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(f"not allowed: {ast.dump(node)[:40]}")

    try:
        unpadded = re.sub(r"(?<![0-9])0+(?=[0-9])", "", expression.strip())  # 07 -> 7
        return str(ev(ast.parse(unpadded, mode="eval").body))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return "error"


def parse_call(text: str, open_marker: str = "<", close_marker: str = ">") -> Optional[tuple[str, str]]:
    """The call ``(name, argument)`` that ``text`` ends with, or None.

    ``text`` must end with ``close_marker``; the call is what lies between the last
    ``open_marker`` and it: a tool name, a space, then the argument (``"<calc 2+3>"`` gives
    ``("calc", "2+3")``).
    """
    if not text.endswith(close_marker):
        return None
    body_end = len(text) - len(close_marker)
    start = text.rfind(open_marker, 0, body_end)
    if start < 0:
        return None
    body = text[start + len(open_marker) : body_end]
    name, _, argument = body.partition(" ")
    if not name or close_marker in body:
        return None
    return name, argument


@dataclass
class ToolCall:
    """One tool invocation: the tool's name, the argument the model wrote, the result."""

    name: str
    argument: str
    result: str


@dataclass
class ToolRun:
    """What :func:`generate_with_tools` returns.

    Attributes:
        text: the generated text (after the prompt), tool results included.
        calls: every tool call, in order.
        finish_reason: ``"length"`` (token budget spent), ``"stop"`` (a stop string),
            ``"eos"``, or ``"max_calls"``.
    """

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "length"


def generate_with_tools(
    model: GPT,
    tokenizer: Any,
    prompt: str,
    tools: dict[str, Callable[[str], str]],
    max_new_tokens: int,
    sampling: Optional[SamplingConfig] = None,
    generator: Optional[torch.Generator] = None,
    open_marker: str = "<",
    close_marker: str = ">",
    stop_strings: Optional[list[str]] = None,
    eos_token_id: Optional[int] = None,
    max_calls: int = 8,
) -> ToolRun:
    """Generate after ``prompt``, running a tool whenever the model closes a call.

    Args:
        model: an lmcourse GPT.  tokenizer: with ``encode(str) -> ids`` and ``decode``.
        prompt: the text to continue.
        tools: name -> function from the argument string to the result string.
        max_new_tokens: budget of *generated* tokens over the whole run (tool results are
            inserted text, not counted).
        sampling, generator, eos_token_id: as in :func:`lmcourse.generate.generate`.
        open_marker, close_marker: the call syntax, ``<name argument>`` by default; the
            close marker is the stop sequence that hands control to the loop.
        stop_strings: further stop sequences that end the run (e.g. ``["\\n"]``).
        max_calls: at most this many tool calls; the run stops after the last one.
    Returns:
        A :class:`ToolRun`. A call naming an unknown tool gets the result ``"unknown tool"``.
    """
    require_instance("model", model, GPT, "an lmcourse GPT")
    require_callable("tokenizer.encode", getattr(tokenizer, "encode", None), "encode(text) -> ids")
    require_instance("prompt", prompt, str)
    require_instance("tools", tools, dict, "a dict of name -> function")
    for name, tool in tools.items():
        require_callable(f"tools[{name!r}]", tool, "tool(argument) -> str")
    require_int("max_new_tokens", max_new_tokens, minimum=0)
    require_int("max_calls", max_calls, minimum=0)
    require_generator("generator", generator)
    for name, marker in (("open_marker", open_marker), ("close_marker", close_marker)):
        require_instance(name, marker, str)
        if not marker:
            raise ValueError(f"{name} must be a non-empty string")
    ends = list(stop_strings or [])
    text, calls, budget = "", [], max_new_tokens
    while budget > 0:
        out = generate(
            model,
            tokenizer.encode(prompt + text),
            budget,
            sampling,
            eos_token_id=eos_token_id,
            stop_strings=[close_marker, *ends],
            tokenizer=tokenizer,
            generator=generator,
        )
        new = out.text[0]
        text += new
        budget -= len(out.new_tokens[0])
        if out.finish_reasons[0] != "stop" or any(new.endswith(s) for s in ends):
            return ToolRun(text, calls, out.finish_reasons[0])
        call = parse_call(prompt + text, open_marker, close_marker)
        if call is None:  # a close marker with no call before it: keep generating
            continue
        name, argument = call
        result = tools[name](argument) if name in tools else "unknown tool"
        calls.append(ToolCall(name, argument, result))
        text += result
        if len(calls) >= max_calls:
            return ToolRun(text, calls, "max_calls")
    return ToolRun(text, calls, "length")
