"""The ``regimen`` program: a private network entered first where a restart asked for one, then the CLI."""

import sys

from jobs import private_network


def main() -> int:
    try:
        private_network.enter_if_asked()  # before the CLI's imports start threads (the kernel requires one)
        from jobs.cli import main as cli

        return cli()
    except KeyboardInterrupt:  # Ctrl-C before the CLI handles it (its imports take a second or two)
        print("interrupted", file=sys.stderr)
        return 130
