"""The one base of every expected failure, and the exit code it maps to.

Every area's error (BuildError, ClusterConfigError, DeployError, ...) derives
from ``UserError``; tasks.py turns any of them into one line on stderr and
its ``exit_code``. Bugs are not UserErrors: they keep their traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected failure: the message names the thing and the fix. Exit 1."""

    exit_code = 1


class OptionError(UserError, ValueError):
    """A bad option or input file, found before anything was changed. Exit 2."""

    exit_code = 2
