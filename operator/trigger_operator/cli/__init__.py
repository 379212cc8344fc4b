"""The `trigger-operator` command line; click and rich are used here and nowhere else.

`commands` wires each command to the package; `preview` and `history` render what the
schedule core and the ledger return.
"""

from trigger_operator.cli.commands import main

__all__ = ["main"]
