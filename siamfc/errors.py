"""Errors raised for bad user input.

Every message is one line that names the offending file and the problem, so the
command-line tools can print it as is instead of a traceback.
"""


class InputError(Exception):
    """A file or value given by the user cannot be used."""
