"""``python -m takeback``: the same as the ``takeback`` command."""

from .cli import main

main()
