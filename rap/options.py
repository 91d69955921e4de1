"""The one parser of numbers given as command-line options.

Every area's option parser (local-up, up, bench, deploy) turns the raw text
invoke hands it into numbers here, so a bad value reads the same everywhere:
``--pod-cpu: 'half' is not a number``. The area passes its own error class,
which keeps that area's exit code (rap.errors).
"""

from __future__ import annotations

from typing import Any

from rap.errors import OptionError


def number(option: str, text: Any, kind: type = float, error: type[Exception] = OptionError,
           default: Any = None) -> Any:
    """``text`` as a ``kind`` (float or int); None gives ``default``; else ``error`` naming the option."""
    if text is None:
        return default
    try:
        if isinstance(text, bool):
            raise ValueError(text)
        value = float(text)
        if kind is int:
            if value != int(value):
                raise ValueError(text)
            return int(value)
        return value
    except (TypeError, ValueError, OverflowError):
        what = "a whole number" if kind is int else "a number"
        raise error(f"{option}: {text!r} is not {what}") from None


def count(option: str, text: Any, default: int, lo: int = 1, hi: int | None = None,
          error: type[Exception] = OptionError) -> int:
    """A whole number of ``option`` in lo..hi (hi None: no upper bound); None gives ``default``."""
    value = number(option, text, int, error, default)
    if value < lo or (hi is not None and value > hi):
        allowed = f"{lo} or more" if hi is None else f"{lo}..{hi}"
        raise error(f"{option}: must be {allowed}, got {value}")
    return value


def new_or_empty_folder(option: str, path: Any, error: type[Exception] = OptionError) -> Any:
    """``path`` unchanged when it is absent or an empty folder, which a run may fill; else ``error``."""
    from pathlib import Path

    if path is not None and Path(path).exists() and (not Path(path).is_dir() or any(Path(path).iterdir())):
        raise error(f"{option}: {path} exists and is not an empty folder; choose another one")
    return path


def with_defaults(help: dict[str, str], defaults: dict[str, Any]) -> dict[str, str]:
    """Each option's help with its default appended, so a default is stated only where it is set."""
    def shown(value: Any) -> str:
        if isinstance(value, (tuple, list)):
            return ",".join(map(str, value))
        return f"{value:g}" if isinstance(value, float) else str(value)

    return {k: f"{text} (default {shown(defaults[k])})" if defaults.get(k) is not None else text
            for k, text in help.items()}


def one_of(names: tuple[str, ...] | list[str]) -> str:
    """``("a", "b", "c")`` -> ``"a, b or c"``, for messages that list the allowed values."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)
