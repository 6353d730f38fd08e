"""Every default written once: a command's options default to the keyword defaults of the package function it
calls (``DEFAULTS = keyword_defaults(function)``, then ``default=DEFAULTS["name"]``), so that ``lacy <command>`` and
the function, which the workflow's scripts call, cannot drift apart."""

from __future__ import annotations

import inspect
from typing import Any, Callable


def keyword_defaults(function: Callable) -> dict[str, Any]:
    """The default value of each parameter of ``function`` (a class: of its constructor) that has one."""
    return {name: parameter.default for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty}
