"""`python -m trigger_operator` runs the CLI."""

from trigger_operator.cli import main

main()
