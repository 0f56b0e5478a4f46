"""The shell of a replica on a live host: real bash, with one session's semantics.

Every world gives shell-typing agents the same session (see :mod:`sim.substrate`): the
working directory, the shell's variables and its exported functions carry over from one
command line to the next, background processes go on, a line still running at the
timeout is hung up. A live host
runs each line in its own ``bash -c`` as the machine's user (so a line that never returns
cannot take the session with it), and carries the session across lines with
:data:`SESSION_SH`, which bash sources first (``BASH_ENV``): it goes to the session's
directory, restores its variables and exported functions, and when the line ends prints
them back after a mark
the controller chose (a random one per line, so a command cannot forge it), closed by the
same mark: what background jobs print after it is the line's output too.
"""

from __future__ import annotations

import secrets
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from sim.hosts.live import ExecResult, LiveHost
from sim.hosts.replica import CONTROL_DIR
from sim.substrate import TIMEOUT_NOTE, ShellResult, record_command
from sim.world import ActionFailed, Death, Replica

if TYPE_CHECKING:
    from sim.hosts.live_substrate import LiveSubstrate

__all__ = ["SESSION_SH", "LiveShell", "agent_command"]

#: Seconds the controller's look into a session (:meth:`LiveShell.probe`) may take.
PROBE_TIMEOUT = 10.0

#: Longest session state (the shell's variables) carried from one command to the next.
MAX_STATE = 64 << 10

#: The session script of every live shell (bound read-only at CONTROL_DIR): bash sources
#: it (``BASH_ENV``) before a command line, restoring the session's directory and
#: variables, and prints them back when the line ends (see :mod:`sim.substrate`).
SESSION_SH = r"""# replisim: one shell session per replica; see sim.substrate.
__rs_mark=$REPLISIM_MARK
cd -- "$REPLISIM_CWD" 2>/dev/null
unset OLDPWD
eval "$REPLISIM_STATE"
unset REPLISIM_STATE REPLISIM_MARK REPLISIM_CWD BASH_ENV
__rs_save() {
    printf '%s%s\n' "$__rs_mark" "$PWD"
    local __rs_v
    for __rs_v in $(compgen -v); do
        case $__rs_v in
            __rs_* | BASH* | SHELLOPTS | PPID | UID | EUID | GROUPS | FUNCNAME | LINENO | \
            RANDOM | SRANDOM | SECONDS | EPOCH* | HISTCMD | PIPESTATUS | DIRSTACK | COMP_* | \
            _ | SHLVL | PWD | OPTIND | OPTERR | HOSTTYPE | MACHTYPE | OSTYPE) continue ;;
        esac
        declare -p "$__rs_v" 2>/dev/null
    done
    declare -fx
    printf '%s' "$__rs_mark"
}
trap __rs_save EXIT
"""


def agent_command(
    host: LiveHost,
    command: str,
    timeout: float,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> ExecResult:
    """Run one command line an agent typed in a live host: ``bash -c``, as the machine's
    user, hung up (as a terminal does) after ``timeout`` seconds.

    What :class:`LiveShell` runs for an agent, and what the containment corpus
    (:mod:`sim.hosts.escapes`) is run through in the tests.
    """
    return host.exec(["bash", "-c", command], timeout, None, cwd, env=env, hangup=True)


class LiveShell:
    """A bash session of one replica in its sandbox (the session semantics of
    :mod:`sim.substrate`): each command line runs in ``bash -c`` as the machine's user,
    after the gate allowed it; the session's directory, variables and exported functions
    are carried from one line to the next by ``session.sh`` (``BASH_ENV``); a line running
    past ``timeout`` is hung up."""

    def __init__(self, substrate: LiveSubstrate, replica: Replica, timeout: float) -> None:
        self.substrate = substrate
        self.world = substrate.world
        self.replica = replica
        self.host = replica.host
        self.timeout = timeout
        self.history: list[ShellResult] = []
        self.cwd = replica.path
        self.state = ""
        server = replica.server
        self.env = {"BASH_ENV": f"{CONTROL_DIR}/session.sh"}
        if server is not None:
            self.env["OPENAI_BASE_URL"] = f"http://localhost:{server.port}/v1"

    def probe(self, command: str) -> ShellResult:
        """Run a command line for real, now, as the session's next line would start,
        without the gate, the record or a change to the session (the controller's look)."""
        mark = f"\x1e{secrets.token_hex(8)}\x1e"
        env = {**self.env, "REPLISIM_MARK": mark, "REPLISIM_CWD": self.cwd}
        env["REPLISIM_STATE"] = self.state
        start = self.world.env.now
        box = self.substrate.box(self.host)
        done = agent_command(box, command, PROBE_TIMEOUT, None, env)
        stdout = done.stdout.partition(mark)[0]
        code = 124 if done.timed_out else done.returncode
        return ShellResult(command, stdout, done.stderr, code, 0.0, self.host.name, start)

    def run(self, command: str) -> Generator[Event, Any, ShellResult]:
        """Run one command line for real; use as ``result = yield from shell.run(cmd)``."""
        world = self.world
        start = world.env.now
        result: ShellResult
        try:
            yield from world.check_command(self.replica, self.host, command)
        except ActionFailed as denied:  # a guardrail refused it: bash never saw it
            result = ShellResult(command, "", denied.reason + "\n", 126, 0.0, self.host.name, start)
        except Death:
            result = ShellResult(command, "", "", 137, 0.0, self.host.name, start)
        else:
            mark = f"\x1e{secrets.token_hex(8)}\x1e"
            env = {
                **self.env,
                "REPLISIM_MARK": mark,
                "REPLISIM_CWD": self.cwd,
                "REPLISIM_STATE": self.state,
            }
            box = self.substrate.box(self.host)
            done: ExecResult = yield world.work(
                agent_command, box, command, self.timeout, None, env
            )
            # The session's state sits between two marks; what the line's background
            # jobs print after the line's shell ended follows it, and is output too.
            stdout, found, rest = done.stdout.partition(mark)
            if not found:
                stdout = done.stdout
            else:
                state, closed, after = rest.partition(mark)
                stdout += after
                if closed:
                    cwd, _, variables = state.partition("\n")
                    self.cwd = cwd or self.cwd
                    self.state = variables if len(variables) <= MAX_STATE else self.state
            stderr, code = done.stderr, done.returncode
            if done.timed_out:
                stderr += TIMEOUT_NOTE.format(timeout=self.timeout)
                code = 124
            result = ShellResult(
                command,
                stdout,
                stderr,
                code,
                world.env.now - start,
                self.host.name,
                start,
                done.timed_out,
            )
        self.history.append(result)
        record_command(world, self, result)
        if not self.replica.alive:
            raise Death(self.replica.cause or "killed")
        return result
