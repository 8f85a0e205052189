"""A network of its own for the private Ray head: a Linux network namespace holding loopback alone.

Ray 2.60 cannot keep a head on loopback: its GCS adds a 0.0.0.0 listener whatever it is told (Ray's PR
#59852, unreleased), and with ``_node_ip_address="127.0.0.1"`` the raylet, the workers and the dashboard
agent still listen on every interface, as do two metrics endpoints of Ray's own. So ``regimen run``, where
it starts a Ray of its own, restarts itself in a network namespace (and, for a user other than root, a
user namespace mapping that user to itself) whose only interface is loopback: whatever address Ray's
processes bind there is reachable from that namespace alone, neither from the network nor from the
machine's other processes. The restart is an ``exec`` of the same command line (same process id, same
terminal, same signals), since the kernel makes a user namespace only for a process with one thread;
it comes after the steps that need the network (downloads) and before Ray starts. Jobs that write to a
bucket need the network, so their runs stay where they are; so do runs where the kernel refuses (not
Linux, user namespaces turned off, a container's seccomp profile): Ray's token still guards the head
there, and the run says why it is not private.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys
from typing import NoReturn

#: Set by :func:`restart_inside` ("enter"), then by :func:`enter_if_asked` to "inside" or to why not
STATE = "REGIMEN_PRIVATE_NETWORK"
INSIDE = "inside"
ENTER = "enter"

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq on Linux: the interface's name, then its flags in a 24-byte union


def restart_inside(argv: list[str]) -> NoReturn:
    """Replace this process with ``python -m jobs ARGV`` that enters a private network first."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "jobs", *argv], {**os.environ, STATE: ENTER})


def state() -> str | None:
    """None where this process was not restarted; :data:`INSIDE`; else why it could not enter."""
    return os.environ.get(STATE)


def enter_if_asked() -> None:
    """Enter a private network where :func:`restart_inside` asked for one. Called first thing in a fresh
    process, while it has one thread; a trial in a forked child first, so that a kernel which grants the
    namespace but not loopback in it leaves this process where it was."""
    if os.environ.get(STATE) != ENTER:
        return
    why = _trial()
    if why is None:
        _enter()
        # Ray finds its node's address by routing towards 8.8.8.8, which fails here, and logs a warning
        # before it settles on loopback; this makes it take loopback at once, as it does on macOS
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ[STATE] = INSIDE if why is None else why


def _trial() -> str | None:
    """Why this process cannot enter a private network, found in a forked child; None when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux's"
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        try:
            _enter()
        except BaseException as error:  # whatever it is, the child must not go on as its parent
            os.write(write_end, (getattr(error, "strerror", None) or str(error) or type(error).__name__).encode())
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reply:
        message = reply.read().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return f"the kernel refused a network namespace ({message or 'no reason given'})"


def _enter() -> None:
    """Move this process into a new network namespace, bring its loopback up; OSError where refused."""
    uid, gid = os.getuid(), os.getgid()
    # root makes the network namespace directly; anyone else needs a user namespace to own it, in which
    # they are themselves (mapped to their own ids), with the capabilities to set the namespace up
    user = CLONE_NEWUSER if os.geteuid() != 0 else 0
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET | user) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare: {os.strerror(code)}")
    if user:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as file:
                file.write(text)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        _, flags = struct.unpack(IFREQ, fcntl.ioctl(probe, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0)))
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))
