"""CLI flags made from a job spec's settings: their help, type and default come from the spec
(:func:`argus.live.launcher.job_schema`), so a flag cannot drift from the DAG Param of the
same setting."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from argus.live.launcher import job_schema

_TYPES = {"integer": int, "number": float, "string": str}


def _kind(prop: Mapping[str, Any]) -> str:
    kinds = [prop.get("type")] + [alt.get("type") for alt in prop.get("anyOf", [])]
    return next((k for k in kinds if k and k != "null"), "string")


def add_settings(parser: argparse.ArgumentParser, cls, flags: Mapping[str, str]) -> None:
    """Add one flag per setting of ``cls`` named in ``flags`` (flag -> setting). A flag left
    out keeps the spec's default; a list setting takes comma-separated values."""
    props = job_schema(cls)["properties"]
    defaults = cls()
    for flag, name in flags.items():
        prop = props[name]
        kind = _kind(prop)
        default = getattr(defaults, name)
        shown = ",".join(default) if isinstance(default, (tuple, list)) else default
        help_text = f"{prop.get('description', name)} (default: {shown if shown not in ('', None, ()) else 'none'})"
        if kind == "boolean":
            parser.add_argument(flag, dest=name, action="store_const", const=not default, default=None,
                                help=help_text)
        elif kind == "array":
            parser.add_argument(flag, dest=name, default=None, help=help_text,
                                type=lambda v: tuple(c.strip() for c in v.split(",") if c.strip()))
        else:
            parser.add_argument(flag, dest=name, type=_TYPES.get(kind, str), default=None, help=help_text,
                                choices=prop.get("enum"))


def settings_from(args: argparse.Namespace, flags: Mapping[str, str]) -> dict[str, Any]:
    """The settings given on the command line (those left out are not in the result)."""
    return {name: getattr(args, name) for name in flags.values() if getattr(args, name) is not None}
