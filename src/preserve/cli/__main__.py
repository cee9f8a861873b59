"""`python -m preserve.cli` runs the command line."""

import sys

from preserve.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
