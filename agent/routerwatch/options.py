"""Declaring config options beside the code that uses them, with their bounds and the reason.

    @dataclass(frozen=True)
    class Config:
        threshold: int = option(5, 1, 10000, "failures from one source that make a brute force")

config.py reads these declarations to validate JSON and --set values and to print --help-config.
"""
from dataclasses import field


def option(default, minimum=None, maximum=None, why="", choices=None):
    """A dataclass field with its allowed range (numbers) or choices (strings) and a reason."""
    return field(default=default, metadata={"min": minimum, "max": maximum, "why": why,
                                            "choices": choices})
