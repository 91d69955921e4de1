"""netdelay's two errors: a bad --rtt value, and a delayer that could not be built, started or installed."""

from __future__ import annotations

from rap.errors import OptionError, UserError


class RttOptionError(OptionError):
    """A bad --rtt value; the message names the option, the value and the format. A ValueError too."""


class NetDelayError(UserError, RuntimeError):
    """Building, starting or installing the delayer failed; the message says what to do."""
