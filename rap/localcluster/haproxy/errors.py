"""The one error of the HAProxy peer: the message names the problem and the fix."""

from __future__ import annotations

from rap.errors import UserError


class HaproxyError(UserError, RuntimeError):
    """haproxy is missing or too old, or the agent cannot run it, its socket or its rule."""
