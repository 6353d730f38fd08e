"""What a ``lacy`` command passes to the package function it calls: for the tests that the command's option defaults
are the function's own (every default written once, ``lacy.defaults``)."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

from lacy.cli import build_parser


def function_defaults(function) -> dict:
    """``function``'s keyword defaults, read from its signature here (not through ``lacy.defaults``)."""
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def command_call(module: ModuleType, function: str, argv: list[str]) -> tuple[dict, dict]:
    """Parse and run ``lacy <argv>`` with ``module.function`` replaced by a recorder (put back on return). Returns
    what the function would get for each of its defaulted parameters (the value passed, else its default), and its
    own defaults."""
    real = getattr(module, function)
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, function, lambda *a, **kw: calls.append(inspect.signature(real).bind(*a, **kw).arguments))
        args = build_parser(argv[0]).parse_args(argv)
        args.func(args)
    (passed,) = calls
    defaults = function_defaults(real)
    return {name: passed.get(name, default) for name, default in defaults.items()}, defaults
