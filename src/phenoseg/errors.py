"""Errors that carry a message meant for the user (printed without a traceback by the CLI)."""


class PhenosegError(Exception):
    """A problem with the user's input or settings, explained in one line."""
