"""One machine description: what an agent sees of a host, in every world.

A scenario's host and bundle define one machine; every substrate renders that same machine.
The modelled world's virtual shell answers from it (``cat /etc/os-release``, ``echo $HOME``,
``ls /opt``), and a live host (Docker container or bubblewrap sandbox) is built from it:
the same user and home directory, the same environment, the same files under ``/etc``, the
same writable folders (the bundle's parent folder, the home directory, ``/tmp``…) and the
same tool set (a tool in ``missing_tools`` is absent: ``command not found``).

The operating system described is the one live hosts really run: their ``/usr`` is the
controller machine's, read-only (Debian 12 on replisim's machines), so ``/etc/os-release``
names it in every world.

What legitimately differs between worlds is listed where the fidelity tests compare them:
sizes on live hosts are the scenario's times ``world.scale``; process ids, times and
network addresses are the kernel's.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "GID",
    "HOME",
    "LANG",
    "OS_RELEASE",
    "PATH",
    "SCRATCH_SIZE",
    "SHELL",
    "UID",
    "USER",
    "Machine",
]

#: The agent's user, its ids, home directory and login shell.
USER = "agent"
UID = 1000
GID = 1000
HOME = "/home/agent"
SHELL = "/bin/bash"
#: ``PATH`` of the agent's shell: the system's tools (never the controller's Python).
PATH = "/usr/local/bin:/usr/bin:/bin"
LANG = "C.UTF-8"
#: ``/etc/os-release``: the system live hosts run (the controller machine's ``/usr``).
OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""
#: Folders every machine lets its user write, besides the bundle's parent and the home.
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
#: Size of each of those and of the home: a tmpfs each on a live host (Docker's default
#: ``/dev/shm`` size).
SCRATCH_SIZE = 64 << 20


@dataclass(frozen=True)
class Machine:
    """What an agent sees of one host.

    Attributes:
        hostname: The host's name (``hostname``, ``/etc/hostname``).
        bundle_root: Folder holding the bundles (the parent of the scenario's
            ``bundle.path``, ``/opt`` by default): writable, and on a live host the folder
            whose size is the host's (scaled) disk.
        missing_tools: Tools absent on this host (``command not found``).
        neighbours: ``(address, name)`` of the hosts linked to this one, for ``/etc/hosts``.
        user: The agent's user name; ``uid``, ``gid``, ``home`` and ``shell`` likewise.
    """

    hostname: str
    bundle_root: str = "/opt"
    missing_tools: frozenset[str] = frozenset()
    neighbours: tuple[tuple[str, str], ...] = ()
    user: str = USER
    uid: int = UID
    gid: int = GID
    home: str = HOME
    shell: str = SHELL
    path: str = PATH
    lang: str = LANG
    os_release: str = field(default=OS_RELEASE, repr=False)

    @classmethod
    def of(
        cls,
        hostname: str,
        bundle_path: str,
        missing_tools: Iterable[str] = (),
        neighbours: Iterable[tuple[str, str]] = (),
    ) -> Machine:
        """The machine of a scenario's host.

        Args:
            hostname: The host's name.
            bundle_path: The scenario's ``bundle.path`` (its parent becomes the bundle root).
            missing_tools: The host group's ``missing_tools``.
            neighbours: ``(address, name)`` of linked hosts.

        Returns:
            The description.
        """
        root = posixpath.dirname(posixpath.normpath(bundle_path)) or "/"
        return cls(hostname, root, frozenset(missing_tools), tuple(neighbours))

    @property
    def writable(self) -> tuple[str, ...]:
        """Folders the agent's user may write, the bundle root first."""
        return tuple(dict.fromkeys((self.bundle_root, self.home, *SCRATCH)))

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of the agent's shell (a login's variables, then ``extra``)."""
        return {
            "HOME": self.home,
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": self.shell,
            "PATH": self.path,
            "LANG": self.lang,
            "HOSTNAME": self.hostname,
            **(extra or {}),
        }

    def home_files(self) -> dict[str, str]:
        """Files in the home directory by name (a login's dot files)."""
        return {
            ".bashrc": f"# ~/.bashrc\nexport PATH={self.path}\n",
            ".profile": "# ~/.profile\n[ -f ~/.bashrc ] && . ~/.bashrc\n",
        }

    def etc_files(self) -> dict[str, str]:
        """Files under ``/etc`` by name (``os-release``, ``hostname``, ``hosts``, ``passwd``,
        ``group``), as every world shows them."""
        hosts = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{self.hostname}"]
        hosts += [f"{address}\t{name}" for address, name in self.neighbours]
        hosts += [
            "",
            "# The following lines are desirable for IPv6 capable hosts",
            "::1     localhost ip6-localhost ip6-loopback",
        ]
        return {
            "os-release": self.os_release,
            "hostname": self.hostname + "\n",
            "hosts": "\n".join(hosts) + "\n",
            "passwd": (
                "root:x:0:0:root:/root:/bin/bash\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                f"{self.user}:x:{self.uid}:{self.gid}::{self.home}:{self.shell}\n"
            ),
            "group": f"root:x:0:\nnogroup:x:65534:\n{self.user}:x:{self.gid}:\n",
        }
