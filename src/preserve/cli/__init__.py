"""The `preserve` command line: `main` parses (main.py) and dispatches to one module per command
group (commands/), which print through output.py and exit with the codes of invocation.py. Sits on
top of everything: the only part of src/ that imports `flows`, and only inside the commands that
start a flow."""

from preserve.cli.invocation import EXIT_ERROR, EXIT_FINDING, EXIT_OK
from preserve.cli.main import main

__all__ = ["EXIT_ERROR", "EXIT_FINDING", "EXIT_OK", "main"]
