import sys

from jobs import private_network

private_network.enter_if_asked()  # first, while this process has one thread (the kernel requires it)

from jobs.cli import main  # noqa: E402

sys.exit(main())
