"""Every error code the code can raise is documented in the API guide's table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r"[a-z]+(?:-[a-z]+)*")
RAISERS = {
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PayloadTooLarge",
    "RingfenceError",
    "Unauthenticated",
    "Unavailable",
}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def raised_codes() -> set[str]:
    """Codes given to error constructors, to the helpers that build errors (``_invalid``), or
    as a ``code=`` argument to anything."""
    codes: set[str] = set()
    for path in (ROOT / "src" / "ringfence").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                raiser = _name(node.func) in RAISERS or _name(node.func).startswith("_invalid")
                arguments = [
                    *(node.args if raiser else ()),
                    *(keyword.value for keyword in node.keywords if keyword.arg == "code"),
                ]
                codes.update(
                    argument.value
                    for argument in arguments
                    if isinstance(argument, ast.Constant)
                    and isinstance(argument.value, str)
                    and CODE.fullmatch(argument.value)
                )
            if isinstance(node, ast.FunctionDef):
                names = [a.arg for a in node.args.args][-len(node.args.defaults) or None :]
                for name, default in zip(names, node.args.defaults, strict=False):
                    if name == "code" and isinstance(default, ast.Constant):
                        codes.add(str(default.value))
    return codes


def test_every_raised_error_code_is_in_the_api_guide() -> None:
    guide = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^\| `([a-z-]+)`(?:, `([a-z-]+)`)? \|", guide, re.MULTILINE))
    names = {name for pair in documented for name in pair if name}

    missing = raised_codes() - names

    assert missing == set()


def test_the_scan_finds_codes_raised_in_every_layer() -> None:
    codes = raised_codes()

    assert {
        "invalid-quantity",
        "idempotency-key-reuse",
        "bulk-limit-exceeded",
        "insufficient-available-to-allocate",
    } <= codes
