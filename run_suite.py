#!/usr/bin/env python3
"""normbench: ``python run_suite.py --variants ln,none --tasks imagenet`` (see README.md)."""
import sys

from suite.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
