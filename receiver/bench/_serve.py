"""``python -m receiver.bench._serve ARGS`` = ``receiver ARGS``: the receiver CLI in a bench subprocess.

Equivalent to the ``receiver`` console script (:func:`receiver.cli.main`),
but still usable while :mod:`receiver.commands` is absent (then only the
core commands, ``serve`` among them, exist).
"""

from __future__ import annotations

from receiver.cli import cli

try:
    from receiver.commands import register_commands
except ImportError:  # pragma: no cover - depends on the tree
    register_commands = None

if __name__ == "__main__":
    if register_commands is not None:
        register_commands(cli)
    cli(prog_name="receiver")
