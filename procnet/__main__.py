"""``python -m procnet``: the command line (the same as the ``procnet`` console script)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
