"""``python -m langchain_hybrid``: the same command line as ``langchain-hybrid``."""

import sys

from langchain_hybrid.cli import main

if __name__ == "__main__":
    sys.exit(main())
