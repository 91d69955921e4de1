"""Invoke tasks for the RAP toolkit.

Each task parses its options and calls one function of the ``rap`` package;
the logic lives there, not here. ``invoke --list`` shows them all and
``invoke --help TASK`` explains each option.
"""

from invoke import task
