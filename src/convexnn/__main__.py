"""Run the command line interface: ``python -m convexnn ...``."""

from convexnn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
