"""The `trigger-operator` command line; click and rich are used here and nowhere else.

`commands` wires each command to the package; `preview`, `history` and `triggers` (get,
describe) render what the schedule core, the ledger and the API return.
"""

from trigger_operator.cli.commands import kubectl_plugin, main

__all__ = ["kubectl_plugin", "main"]
