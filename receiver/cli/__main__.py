"""``python -m receiver.cli ARGS`` is ``receiver ARGS`` (bench and chaos subprocesses use it)."""

from receiver.cli.main import main

main()
