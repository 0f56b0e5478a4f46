"""Kernel facts about the processes of live hosts, and the check of a replica's registration.

A replica's scripts tell the controller who they are over the control socket
(:mod:`sim.hosts.control`); anything in the sandbox can write the same words. So the
controller believes none of them: every fact here comes from the kernel or from the
controller's own probe.

* **Who**: the pid at the other end of a Unix socket is the kernel's (``SO_PEERCRED``), held
  by a pidfd so that a reused pid is never mistaken for it (:func:`peer_process`).
* **Where**: a process belongs to a live host when its PID namespace is the host's init's
  (:func:`sandbox_of`, :func:`in_sandbox`, :func:`init_pid`).
* **What**: its argument vector, working directory and executable as the kernel reports them
  (:func:`process_argv`, :func:`process_cwd`, :func:`process_exe`); the SHA-256 of a file as
  the process's own mount namespace sees it (:func:`file_digest`).
* **Serving**: which process of the sandbox holds the listening socket of a TCP port
  (:func:`listener_pid`), and whether it answers HTTP when the controller itself asks from
  inside the sandbox's network namespace (:func:`probe_http`).

:func:`verify_agent` puts them together for an agent's ``hello``: a :class:`Verdict` whose
``reason`` says precisely which fact failed.

Everything reads ``/proc`` of the machine the controller runs on and joins namespaces, so
the controller must run as root (``CAP_SYS_PTRACE`` to read other users' ``/proc/PID/root``
and ``fd``, ``CAP_SYS_ADMIN`` to join a network namespace) on the machine where the
sandboxes run: a remote Docker engine's containers cannot be verified this way
(:func:`init_pid` raises :class:`VerifyError` for them).

Example:
    >>> verdict = verify_agent(box, peer, folder="/work/b", port=8001,  # doctest: +SKIP
    ...                        weights_sha256=digest)
    >>> verdict.ok, verdict.reason  # doctest: +SKIP
    (False, 'weights sha256 differs')

The package, by fact: :mod:`~sim.hosts.verify.peers` (who), :mod:`~sim.hosts.verify.sandboxes`
(where), :mod:`~sim.hosts.verify.files` (the weights' digest), :mod:`~sim.hosts.verify.network`
(serving), :mod:`~sim.hosts.verify.check` (the whole check); :mod:`~sim.hosts.verify.kernel`
holds the Linux constants and libc calls they share, and the errors.
"""

from sim.hosts.verify.check import Verdict, verify_agent
from sim.hosts.verify.files import MAX_DIGEST_BYTES, file_digest
from sim.hosts.verify.kernel import ProbeError, VerifyError
from sim.hosts.verify.network import listener_pid, listener_pids, netns_socket, probe_http
from sim.hosts.verify.peers import (
    PeerProcess,
    ns_pid,
    peer_pid,
    peer_process,
    process_argv,
    process_cwd,
    process_exe,
    start_ticks,
)
from sim.hosts.verify.sandboxes import PidNamespace, in_sandbox, init_pid, sandbox_of, sandbox_pids

__all__ = [
    "MAX_DIGEST_BYTES",
    "PeerProcess",
    "PidNamespace",
    "ProbeError",
    "Verdict",
    "VerifyError",
    "file_digest",
    "in_sandbox",
    "init_pid",
    "listener_pid",
    "listener_pids",
    "netns_socket",
    "ns_pid",
    "peer_pid",
    "peer_process",
    "probe_http",
    "process_argv",
    "process_cwd",
    "process_exe",
    "sandbox_of",
    "sandbox_pids",
    "start_ticks",
    "verify_agent",
]
