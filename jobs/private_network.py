"""A network of its own for the private Ray head: a Linux network namespace holding loopback alone.

Ray 2.60 cannot keep a head on loopback: its GCS adds a 0.0.0.0 listener whatever it is told (Ray's PR
#59852, unreleased), and with ``_node_ip_address="127.0.0.1"`` the raylet, the workers and the dashboard
agent still listen on every interface, as do two metrics endpoints of Ray's own. So ``regimen run``, where
it starts a Ray of its own for a local results folder, restarts itself in a network namespace (and, for a
user other than root, a user namespace mapping that user to itself) whose only interface is loopback:
whatever address Ray's processes bind there, no other network namespace reaches it, neither the network
nor the machine's own interfaces. The restart is an ``exec`` of the same command line (same process id,
terminal and signals), since the kernel makes a user namespace only for a process with one thread, which
a fresh process still is in :func:`enter_if_asked`; it comes after the steps that need the network
(downloads) and before Ray starts. Where the kernel refuses (user namespaces turned off or restricted by
AppArmor, a container's seccomp profile) or the system is not Linux, the run goes on where it is, its
head guarded by Ray's token, and says why.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import sys

#: How the restart asks the new process to enter; read and removed from the environment at once, so that
#: neither a value preset by hand nor Ray's workers, which inherit the environment, can claim a state
STATE = "REGIMEN_PRIVATE_NETWORK"
ENTER = "enter"
INSIDE = "inside"
NOT_LINUX = "network namespaces are Linux's"

_state: str | None = None  # None until this process restarts; then INSIDE, or why it is not inside

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq on Linux: the interface's name, then its flags in a 24-byte union


def possible_here() -> bool:
    return sys.platform.startswith("linux")


def state() -> str | None:
    """None where this process has not restarted; :data:`INSIDE`; else why it is not inside."""
    return _state


def restart_inside(environment: dict[str, str]) -> None:
    """Replace this process with its own command line (``sys.orig_argv``: the interpreter's flags and the
    script or ``-m jobs`` as given), ``environment`` added, to enter a private network first. Returns only
    where the ``exec`` fails, with :func:`state` saying why."""
    global _state
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, {**os.environ, **environment, STATE: ENTER})
    except (OSError, ValueError) as error:  # no usable interpreter path (embedded Python), a huge environment
        _state = f"it could not restart itself ({error})"


def enter_if_asked() -> None:
    """Enter a private network where :func:`restart_inside` asked for one; called first thing in a fresh
    process, while it has one thread, and again later (a no-op by then). A trial in a forked child comes
    first, so that a kernel that grants the namespace but not loopback in it leaves this process as it was."""
    global _state
    if os.environ.pop(STATE, None) != ENTER:
        return
    why = _why_not()
    if why is None:
        before = os.readlink("/proc/self/ns/net")
        try:
            _enter()
        except OSError as error:
            if os.readlink("/proc/self/ns/net") != before:  # inside, with no loopback: nothing could run here
                print(f"a private network half made ({error.strerror}); nothing was trained", file=sys.stderr)
                sys.exit(2)
            why = _refused(error)
        else:
            # Ray finds its node's address by routing towards 8.8.8.8, which fails here, and warns before it
            # settles on loopback; this makes it take loopback at once, as it does on macOS
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    _state = INSIDE if why is None else why


def join_command(pid: int) -> str:
    """The ``nsenter`` that runs a command in the network of the run with process id ``pid``, for the user
    who started it: a network namespace made with a user namespace belongs to that one, entered first."""
    user = " --user --preserve-credentials" if _with_user_namespace() else ""
    return f"nsenter --target {pid} --net{user}"


def _with_user_namespace() -> bool:
    """Whether this process makes its network namespace inside a user namespace of its own: anyone but root
    needs one to own it, in which they are themselves (mapped to their own ids), with the capabilities to
    set the namespace up; root makes it directly (in a user namespace, root could no longer override the
    permissions of files owned by users not mapped into it)."""
    return os.geteuid() != 0


def _why_not() -> str | None:
    """Why this process cannot enter a private network, found in a forked child; None when it can."""
    if not possible_here():
        return NOT_LINUX
    if len(os.listdir("/proc/self/task")) > 1:
        return "it had started threads before it could enter one (the kernel requires a single thread)"
    read_end, write_end = os.pipe()
    try:
        child = os.fork()
    except OSError as error:
        os.close(read_end)
        os.close(write_end)
        return f"it could not try ({error.strerror})"
    if child == 0:
        code = 1
        try:
            os.close(read_end)
            _enter()
            code = 0
        except BaseException as error:  # whatever it is, this child must not go on as its parent
            message = _refused(error) if isinstance(error, OSError) else f"{type(error).__name__}: {error}"
            os.write(write_end, message.encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reply:
        message = reply.read().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    return None if os.waitstatus_to_exitcode(status) == 0 else message or "the kernel refused a network namespace"


def _refused(error: OSError) -> str:
    if error.errno == errno.EPERM and not _with_user_namespace():  # refused for want of a capability
        hint = "; root without CAP_SYS_ADMIN, as in a container, or a container's seccomp profile"
    else:
        hint = {
            errno.ENOSPC: "; user namespaces are turned off: sysctl user.max_user_namespaces",
            errno.EPERM: (
                "; user namespaces turned off or restricted (AppArmor: sysctl "
                "kernel.apparmor_restrict_unprivileged_userns), or a container's seccomp profile"
            ),
        }.get(error.errno, "")
    return f"the kernel refused a network namespace ({error.strerror}{hint})"


def _enter() -> None:
    """Move this process into a new network namespace and bring its loopback up; OSError, naming the step,
    where refused."""
    uid, gid = os.geteuid(), os.getegid()
    user = CLONE_NEWUSER if _with_user_namespace() else 0
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET | user) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare: {os.strerror(code)}")
    if user:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            try:
                with open(f"/proc/self/{name}", "w") as file:
                    file.write(text)
            except OSError as error:
                raise OSError(error.errno, f"{name}: {error.strerror}") from None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            _, flags = struct.unpack(IFREQ, fcntl.ioctl(probe, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0)))
            fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))
    except OSError as error:
        raise OSError(error.errno, f"loopback: {error.strerror}") from None
