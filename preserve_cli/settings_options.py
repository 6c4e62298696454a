"""Click options generated from the settings dataclasses, so that every command spells a setting the same way.

``preserve eval``, ``preserve worker`` and ``preserve demo`` all take the control core's
:class:`~streams.policies.control_settings.ControlSettings` fields as ``--field-name`` (``--slo-ttft-s``,
``--freeze-s``, ...), with the field's ``help`` metadata and default.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable
from typing import Any

import click

__all__ = ["dataclass_options"]


def _click_type(fld: dataclasses.Field[Any], hints: dict[str, Any]) -> Any:
    hint = hints.get(fld.name)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(hint)])
    if args and all(typing.get_origin(a) is typing.Literal for a in args):
        return click.Choice([str(x) for a in args for x in typing.get_args(a)])
    base = args[0] if args else hint
    return base if base in (int, float, str, bool) else str


def dataclass_options(cls: type, skip: Iterable[str] = ()) -> Callable[[Any], Any]:
    """A decorator adding one ``--name`` option per field of ``cls`` (except ``skip``); values keep the field
    names as parameter names, so ``cls(**{k: kwargs[k] ...})`` builds the settings."""
    hints = typing.get_type_hints(cls)
    skipped = set(skip)

    def decorate(f: Any) -> Any:
        for fld in reversed(dataclasses.fields(cls)):
            if fld.name in skipped:
                continue
            kind = _click_type(fld, hints)
            flag = f"--{fld.name.replace('_', '-')}"
            if kind is bool:
                f = click.option(f"{flag}/--no-{fld.name.replace('_', '-')}", fld.name, default=fld.default,
                                 show_default=True, help=fld.metadata.get("help", ""))(f)
                continue
            f = click.option(flag, fld.name, type=kind, default=fld.default, show_default=True,
                             help=fld.metadata.get("help", ""))(f)
        return f
    return decorate
