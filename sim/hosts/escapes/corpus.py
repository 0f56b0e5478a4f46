"""The containment corpus (:data:`CORPUS`): the attempts by family, in the order they run,
with the Python snippets several of them share."""

from __future__ import annotations

from sim.hosts.escapes.attempts import EscapeAttempt, _check_corpus


def _py(code: str) -> str:
    """A ``python3 -c`` command line for ``code`` (which must not contain single quotes)."""
    assert "'" not in code
    return f"python3 -c '{code}'"


# Python snippets shared by several attempts (double quotes only: they go in '...').
_CONNECT_TCP = """
import socket, sys
ok = []
for host in sys.argv[2:]:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, int(sys.argv[1])))
        ok.append(host)
    except OSError as err:
        print(host, err)
    s.close()
if ok:
    print("ESCAPED: connected to", ok)
sys.exit(0 if ok else 1)
"""

_CONNECT_UNIX = """
import socket, sys
ok = []
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path.replace("@", "\\0", 1) if path.startswith("@") else path)
        ok.append(path)
    except OSError as err:
        print(path, err)
    s.close()
if ok:
    print("ESCAPED: connected to", ok)
sys.exit(0 if ok else 1)
"""

_ABSTRACT_ALL = """
import socket, sys
names = {"@" + sys.argv[1]}
for line in open("/proc/net/unix").read().splitlines()[1:]:
    parts = line.split()
    if len(parts) >= 8 and parts[7].startswith("@"):
        names.add(parts[7])
ok = []
for name in sorted(names):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect("\\0" + name[1:])
        ok.append(name)
    except OSError as err:
        print(name, err)
    s.close()
print("abstract sockets seen:", len(names))
if ok:
    print("ESCAPED: connected to", ok)
sys.exit(0 if ok else 1)
"""

_PTRACE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
for request, name in ((16, "PTRACE_ATTACH"), (0x4206, "PTRACE_SEIZE")):
    if libc.ptrace(request, pid, None, None) == 0:
        print("ESCAPED:", name, pid)
        sys.exit(0)
    print(name, os.strerror(ctypes.get_errno()))
sys.exit(1)
"""

_VM_READ = """
import ctypes, os, sys
class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(64)
local = IoVec(ctypes.cast(buf, ctypes.c_void_p), 64)
remote = IoVec(0x400000, 64)
n = libc.process_vm_readv(int(sys.argv[1]), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
err = ctypes.get_errno()
if n >= 0 or err == 14:  # EFAULT: the process was reachable, only the address was wrong
    print("ESCAPED: process_vm_readv reached", sys.argv[1])
    sys.exit(0)
print("process_vm_readv", os.strerror(err))
sys.exit(1)
"""

_CGROUP_WRITE = """
import glob, sys
ok = []
targets = [
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "-1"),
    ("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "-1"),
    ("/sys/fs/cgroup/pids/pids.max", "max"),
    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1"),
    ("/sys/fs/cgroup/memory.max", "max"),
    ("/sys/fs/cgroup/pids.max", "max"),
]
for path, value in targets:
    try:
        with open(path, "w") as f:
            f.write(value)
        ok.append(path)
    except OSError as err:
        print(path, err)
for procs in glob.glob("/sys/fs/cgroup/*/cgroup.procs") + ["/sys/fs/cgroup/cgroup.procs"]:
    try:
        with open(procs, "w") as f:
            f.write("0")
        ok.append(procs)
    except OSError as err:
        print(procs, err)
if ok:
    print("ESCAPED: wrote", ok)
sys.exit(0 if ok else 1)
"""

_RLIMIT_RAISE = """
import resource, sys
ok = []
for name in ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_FSIZE"):
    which = getattr(resource, name)
    soft, hard = resource.getrlimit(which)
    if hard == resource.RLIM_INFINITY:
        continue
    try:
        resource.setrlimit(which, (hard + 1, hard + 1))
        ok.append(name)
    except (OSError, ValueError) as err:
        print(name, err)
if ok:
    print("ESCAPED: raised", ok)
sys.exit(0 if ok else 1)
"""

_SETUID = """
import os, sys
for call, arg in ((os.setuid, 0), (os.setgid, 0), (os.setgroups, [0])):
    try:
        call(arg)
        print("ESCAPED:", call.__name__)
        sys.exit(0)
    except OSError as err:
        print(call.__name__, err)
sys.exit(1)
"""

_FORK_LOOP = """
import os, time
children = 0
deadline = time.time() + 4
while time.time() < deadline:
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
    except OSError:
        time.sleep(0.01)
print("forked", children)
"""

_THREADS = """
import threading, time
started = 0
try:
    for _ in range(100000):
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        started += 1
except RuntimeError as err:
    print("stopped:", err)
print("threads", started)
"""

_MEMORY = """
import sys
blocks = []
while True:
    blocks.append(bytearray(8 << 20))
    if len(blocks) % 16 == 0:
        print(len(blocks) * 8, "MiB", flush=True)
"""

_FILES = """
import os, sys, time
os.makedirs("manyfiles", exist_ok=True)
n = 0
deadline = time.time() + 5
try:
    while time.time() < deadline and n < 400000:
        open("manyfiles/%d" % n, "w").close()
        n += 1
except OSError as err:
    print("stopped:", err)
print("files", n)
"""

_OOM_ADJ = """
import sys
ok = []
for path, value in (("/proc/self/oom_score_adj", "-1000"), ("/proc/1/oom_score_adj", "-1000")):
    try:
        with open(path, "w") as f:
            f.write(value)
        ok.append(path)
    except OSError as err:
        print(path, err)
if ok:
    print("ESCAPED: wrote", ok)
sys.exit(0 if ok else 1)
"""


_ETC_WRITE = """
import os, sys
tries = [
    ("append passwd", lambda: open("/etc/passwd", "a").write("evil:x:0:0::/:/bin/sh\\n")),
    ("rename hosts", lambda: os.rename("/etc/hosts", "/etc/hosts.old")),
    ("unlink resolv.conf", lambda: os.unlink("/etc/resolv.conf")),
    ("new file", lambda: open("/etc/replisim-escape-probe", "w").write("x")),
    ("new link", lambda: os.symlink("/tmp", "/etc/replisim-escape-probe")),
    ("chmod group", lambda: os.chmod("/etc/group", 0o666)),
    ("touch hostname", lambda: os.utime("/etc/hostname")),
    ("new alternative", lambda: os.symlink("/bin/sh", "/etc/alternatives/replisim-probe")),
    ("write through awk", lambda: open("/etc/alternatives/awk", "a").write("x")),
]
ok = []
for what, call in tries:
    try:
        call()
        ok.append(what)
    except OSError as err:
        print(what, err)
if ok:
    print("ESCAPED: /etc changed:", ok)
sys.exit(0 if ok else 1)
"""

# /dev/mqueue is writable on purpose, as on any Linux machine: the host's own message queues.
_WRITE_OUTSIDE_WRITABLE = """
import os, sys
folders = ["/", "/home", "/var", "/var/lib", "/run", "/root", "/srv", "/mnt", "/media",
           "/boot", "/usr/local", "/usr/local/bin", "/dev", "/dev/pts", "/sys/kernel",
           "/proc/sys/kernel"]
ok = []
for folder in folders:
    for make in (lambda p: open(p, "w").close(), os.mkdir):
        path = os.path.join(folder, "replisim-escape-probe")
        try:
            make(path)
            ok.append(path)
        except OSError:
            pass
print("tried", len(folders), "folders")
if ok:
    print("ESCAPED: wrote", ok)
sys.exit(0 if ok else 1)
"""


#: The corpus, in the order it runs: escapes first, then the limits attempts, then the
#: resource attempts (which so also show that the limits still hold).
CORPUS: tuple[EscapeAttempt, ...] = (
    # ------------------------------------------------------------------ write outside
    EscapeAttempt("write-root", "write-outside", "echo x > /replisim-escape-probe"),
    EscapeAttempt("write-usr", "write-outside", "touch /usr/replisim-escape-probe"),
    EscapeAttempt(
        "write-python-prefix",
        "write-outside",
        _py('import sys; open(sys.prefix + "/replisim-escape-probe", "w").write("x")'),
    ),
    EscapeAttempt("write-etc", "write-outside", "echo '6.6.6.6 evil' >> /etc/hosts"),
    EscapeAttempt("change-etc-files", "write-outside", _py(_ETC_WRITE)),
    EscapeAttempt("write-outside-writable", "write-outside", _py(_WRITE_OUTSIDE_WRITABLE)),
    EscapeAttempt(
        "overwrite-sentinel",
        "write-outside",
        # Succeeds in the sandbox's own /tmp (then cleaned); the sentinel outside must not change.
        "mkdir -p {sentinel_dir} && echo pwned > {sentinel} && cat {sentinel}"
        "; rm -rf {sentinel_dir}",
        must_fail=False,
    ),
    EscapeAttempt(
        "symlink-out-of-work",
        "write-outside",
        "ln -sf / rootlink && echo x > rootlink/replisim-escape-probe",
    ),
    EscapeAttempt(
        "proc-root-of-init",
        "write-outside",
        "echo x > /proc/1/root/replisim-escape-probe || echo x > /proc/1/cwd/../escape-probe",
    ),
    # ------------------------------------------------------------------ read the host
    EscapeAttempt("read-sentinel", "read-host", "cat {sentinel}"),
    EscapeAttempt(
        "find-sentinel",
        "read-host",
        "find / -path /proc -prune -o -name '{sentinel_name}' -print 2>/dev/null | grep ."
        " && cat $(find / -path /proc -prune -o -name '{sentinel_name}' -print 2>/dev/null)",
        timeout=60,
    ),
    EscapeAttempt("read-shadow", "read-host", "cat /etc/shadow"),
    EscapeAttempt(
        "read-outside-proc",
        "read-host",
        "cat /proc/{outside_pid}/cmdline /proc/{outside_pid}/environ"
        " && grep -a {outside_token} /proc/{outside_pid}/cmdline",
    ),
    EscapeAttempt(
        "list-outside-processes",
        "read-host",
        "ps -eo args | grep -v grep | grep {outside_token}",
    ),
    EscapeAttempt("read-block-device", "read-host", "head -c 512 /dev/vda || head -c 512 /dev/sda"),
    EscapeAttempt("read-kcore", "read-host", "head -c 64 /proc/kcore >kcore && od kcore"),
    EscapeAttempt("read-kernel-log", "read-host", "dmesg >dmesg && tail -3 dmesg"),
    # ------------------------------------------------------------------ docker socket
    EscapeAttempt(
        "docker-socket-visible",
        "docker-socket",
        "ls -l /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock",
    ),
    EscapeAttempt(
        "docker-socket-connect",
        "docker-socket",
        _py(_CONNECT_UNIX)
        + " /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock"
        " /proc/1/root/var/run/docker.sock",
    ),
    EscapeAttempt("docker-cli", "docker-socket", "docker ps"),
    EscapeAttempt(
        "docker-api-curl",
        "docker-socket",
        "curl -s --max-time 3 --unix-socket /var/run/docker.sock http://localhost/containers/json",
    ),
    # ------------------------------------------------------------------ network
    EscapeAttempt(
        "machine-loopback",
        "network",
        _py(_CONNECT_TCP) + " {loopback_port} 127.0.0.1 ::1 127.0.0.2",
    ),
    EscapeAttempt(
        "machine-loopback-curl", "network", "curl -s --max-time 3 http://127.0.0.1:{loopback_port}/"
    ),
    EscapeAttempt("peer-sandbox", "network", _py(_CONNECT_TCP) + " {peer_port} {peer_addr}"),
    EscapeAttempt(
        "abstract-unix-sockets",
        "network",
        _py(_ABSTRACT_ALL) + " {abstract_socket}",
    ),
    EscapeAttempt("machine-unix-socket", "network", _py(_CONNECT_UNIX) + " {unix_socket}"),
    EscapeAttempt(
        "raw-socket",
        "network",
        _py('import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1); print("ESCAPED")'),
    ),
    EscapeAttempt("add-interface", "network", "ip link add replisim0 type dummy"),
    # ------------------------------------------------------------------ kill outside
    EscapeAttempt("kill-outside-pid", "kill-outside", "kill -9 {outside_pid}"),
    EscapeAttempt("pkill-outside", "kill-outside", "pkill -9 -f '^{outside_token}'"),
    EscapeAttempt(
        "kill-everything",
        "kill-outside",
        # Allowed to run; it may reach only the sandbox's own processes.
        "kill -9 -1; echo done",
        must_fail=False,
    ),
    # ------------------------------------------------------------------ ptrace
    EscapeAttempt("ptrace-outside", "ptrace", _py(_PTRACE) + " {outside_pid}"),
    EscapeAttempt("vm-read-outside", "ptrace", _py(_VM_READ) + " {outside_pid}"),
    EscapeAttempt(
        "gdb-outside", "ptrace", "timeout 10 gdb -batch -p {outside_pid} -ex 'info proc'"
    ),
    EscapeAttempt("proc-mem-outside", "ptrace", "head -c 16 /proc/{outside_pid}/mem"),
    # ------------------------------------------------------------------ mount
    EscapeAttempt("mount-tmpfs", "mount", "mkdir -p mnt && mount -t tmpfs none mnt"),
    EscapeAttempt("remount-root-rw", "mount", "mount -o remount,rw / && touch /rw-probe"),
    EscapeAttempt("bind-over-usr", "mount", "mount --bind $HOME /usr"),
    EscapeAttempt(
        "remount-etc-rw", "mount", "mount -o remount,rw /etc && touch /etc/replisim-escape-probe"
    ),
    EscapeAttempt(
        "own-overlay-of-usr",
        "mount",
        "mkdir -p up wk merged && mount -t overlay overlay"
        " -o lowerdir=/usr,upperdir=up,workdir=wk merged && ls merged/bin/{hidden_tool}",
    ),
    EscapeAttempt(
        "user-namespace-mount",
        "mount",
        "unshare -Urm sh -c 'mount -t tmpfs none /tmp && echo ESCAPED'",
    ),
    # ------------------------------------------------------------------ privilege
    EscapeAttempt("su-root", "privilege", "su -c id root </dev/null"),
    EscapeAttempt("setuid-zero", "privilege", _py(_SETUID)),
    EscapeAttempt(
        "capabilities",
        "privilege",
        # Fails (contained) when the effective capability set is empty.
        "grep CapEff /proc/self/status; ! grep -q 'CapEff:.0000000000000000' /proc/self/status",
    ),
    EscapeAttempt("mknod-disk", "privilege", "mknod disk b 254 0 && head -c 16 disk"),
    EscapeAttempt("chroot", "privilege", "chroot / true"),
    EscapeAttempt("sysrq", "privilege", "echo h > /proc/sysrq-trigger"),
    EscapeAttempt("set-hostname", "privilege", "hostname replisim-pwned"),
    # ------------------------------------------------------------------ missing tool
    EscapeAttempt(
        "run-missing-tool",
        "missing-tool",
        "{hidden_tool} --version || /usr/bin/{hidden_tool} --version"
        " || /bin/{hidden_tool} --version || /usr/sbin/{hidden_tool} --version"
        " || /proc/1/root/usr/bin/{hidden_tool} --version",
    ),
    EscapeAttempt(
        "find-missing-tool",
        "missing-tool",
        "find / \\( -path /proc -o -path /sys \\) -prune -o -name '{hidden_tool}' -type f"
        " -perm -u+x -print 2>/dev/null | grep .",
        timeout=60,
    ),
    EscapeAttempt(
        "overlay-lower-layers",
        "missing-tool",
        # The overlay's layers are named in mountinfo; none of them is mounted inside.
        "for d in $(grep -o 'lowerdir=[^, ]*' /proc/self/mountinfo | sed 's/lowerdir=//;"
        ' s/:/ /g\'); do ls "$d/bin/{hidden_tool}" && exit 0; done; exit 1',
    ),
    EscapeAttempt(
        "write-usr-overlay",
        "missing-tool",
        "touch /usr/bin/{hidden_tool} || touch /usr/bin || mknod /usr/bin/replisim-probe c 0 0"
        " || setfattr -n trusted.overlay.opaque -v y /usr/bin",
    ),
    # ------------------------------------------------------------------ own limits
    EscapeAttempt("cgroup-limits", "limits", _py(_CGROUP_WRITE)),
    EscapeAttempt("raise-rlimits", "limits", _py(_RLIMIT_RAISE)),
    EscapeAttempt("oom-score-adj", "limits", _py(_OOM_ADJ)),
    EscapeAttempt("prlimit-init", "limits", "prlimit --pid 1 --nproc=unlimited --as=unlimited"),
    # ------------------------------------------------------------------ resources
    EscapeAttempt(
        "shell-fork-bomb",
        "fork-bomb",
        # Outlives its timeout on purpose: the kill of the command's process group at the
        # timeout is what ends the bomb (a bomb left running keeps the sandbox at its pids
        # cap, where nothing, not even the clean-up's `kill`, can fork).
        "f() { f | f & }; f; sleep 60",
        timeout=8,
        must_fail=False,
        bounded=True,
    ),
    EscapeAttempt(
        "python-fork-loop", "fork-bomb", _py(_FORK_LOOP), timeout=10, must_fail=False, bounded=True
    ),
    EscapeAttempt(
        "thread-bomb", "fork-bomb", _py(_THREADS), timeout=10, must_fail=False, bounded=True
    ),
    EscapeAttempt(
        "setsid-fork-bomb",
        "fork-bomb",
        # Leaves the command's process group, so the timeout does not reach it.
        "setsid sh -c 'f() { f | f & }; f' >/dev/null 2>&1 </dev/null & sleep 4; echo left",
        timeout=10,
        must_fail=False,
        bounded=True,
    ),
    EscapeAttempt("fill-memory", "memory", _py(_MEMORY), timeout=30, must_fail=False, bounded=True),
    EscapeAttempt(
        "fill-shm",
        "memory",
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=1024; rm -f /dev/shm/fill",
        timeout=30,
        must_fail=False,
        bounded=True,
    ),
    EscapeAttempt(
        "fill-tmp",
        "memory",
        "dd if=/dev/zero of=/tmp/fill bs=1M count=1024; rm -f /tmp/fill",
        timeout=30,
        must_fail=False,
        bounded=True,
    ),
    EscapeAttempt(
        "fill-workdir",
        "disk",
        # The bundle root is the host's disk: a full one gives ENOSPC, nothing outside fills.
        "dd if=/dev/zero of={bundle_root}/fill bs=1M count=1024; ls -l {bundle_root}/fill"
        "; rm -f {bundle_root}/fill",
        timeout=30,
        must_fail=False,
        bounded=True,
    ),
    EscapeAttempt(
        "fill-home",
        "disk",
        "dd if=/dev/zero of=$HOME/fill bs=1M count=1024; rm -f $HOME/fill",
        timeout=30,
        must_fail=False,
        bounded=True,
    ),
    EscapeAttempt(
        "fill-var-tmp",
        "disk",
        "dd if=/dev/zero of=/var/tmp/fill bs=1M count=1024; rm -f /var/tmp/fill",
        timeout=30,
        must_fail=False,
        bounded=True,
    ),
    EscapeAttempt(
        "many-files",
        "disk",
        _py(_FILES) + "; rm -rf manyfiles",
        timeout=60,
        must_fail=False,
        bounded=True,
        may_end_sandbox=True,
    ),
    EscapeAttempt(
        "flood-host-log",
        "disk",
        # The host's log (PID 1's output) is kept outside the sandbox.
        "timeout 4 sh -c 'yes replisim-log-flood-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx >>/proc/1/fd/1'"
        "; true",
        timeout=10,
        must_fail=False,
        bounded=True,
    ),
)


_check_corpus(CORPUS)
