"""The ``regimen`` program: a private network entered first where a restart asked for one, then the CLI."""

from jobs import private_network


def main() -> int:
    private_network.enter_if_asked()  # before the CLI's imports start threads (the kernel requires one)
    from jobs.cli import main as cli

    return cli()
