"""The project's one root exception: ``except NotifyError`` catches every error this code
raises on purpose (bad records, provider failures, configuration, changed upstream code), and
nothing a bug raises."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every exception the project defines."""
