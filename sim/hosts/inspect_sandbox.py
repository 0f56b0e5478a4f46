"""replisim's live hosts as Inspect AI sandboxes: ``sandbox="replisim-docker"`` or
``sandbox="replisim-local"``.

An Inspect task that names one of these runs each sample's commands in a fresh replisim
live host (:mod:`sim.hosts.live`): a hardened Docker container (offline base image,
read-only root, ``cap_drop=ALL``, ``no-new-privileges``, network ``none``) or a bubblewrap
sandbox (own mount, PID, network, IPC and user namespaces, read-only system), as the
machine's user ``agent`` (uid 1000) in ``/home/agent``, with the host's memory cap, CPU
quota and process cap, and a bundle root (``/opt``) of its own size. Inspect finds them
through its ``inspect_ai`` entry point (this module), so no import is needed in the task::

    Task(dataset=..., solver=..., scorer=..., sandbox="replisim-docker")
    Task(..., sandbox=("replisim-local", ReplisimSandboxConfig(memory="256MiB", pids=64)))

``exec`` runs an argument vector with the host's ``exec`` (its timeout ends the command's
process group and raises :class:`TimeoutError`, as Inspect asks); ``read_file`` and
``write_file`` work from inside the host, as its user, so nothing outside it is reachable.
Only the machine's user can run commands (``user=None``, ``"agent"`` or ``"1000"``); the
sandbox tools Inspect injects as root (``bash_session``, ``text_editor``) are not
available, the plain ``bash()`` and ``python()`` tools are.

Every host a sample makes carries a run id ``inspect-<id>``; the sample's clean-up removes
it, and ``inspect sandbox cleanup replisim-docker [RUN_ID]`` removes what a killed
evaluation left (every ``inspect-`` run's hosts, or one run's, as ``replisim hosts clean
--run`` does). Inspect's default number of concurrent sandboxes
is the number of hosts of the default configuration that fit this machine
(:mod:`sim.capacity`).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal, Union, overload

import anyio
from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxConnection,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentLimits,
    SandboxUnavailableError,
    SandboxUserUnsupportedError,
    sandboxenv,
)
from pydantic import BaseModel, ConfigDict, Field

from sim.hosts.live import RUN_LABEL, LiveHost, LiveHostError, clean, live_host, state_root
from sim.machine import Machine

__all__ = [
    "ReplisimDockerSandbox",
    "ReplisimLocalSandbox",
    "ReplisimSandboxConfig",
]


#: The run ids of the hosts samples make start with it (what ``cli_cleanup`` removes).
RUN_PREFIX = "inspect-"

#: Threads that start hosts: a bubblewrap host dies with the thread that started it
#: (``--die-with-parent``), and these live as long as the process.
_STARTER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="replisim-inspect-start")


class ReplisimSandboxConfig(BaseModel):
    """The host a sample gets (each field as :class:`sim.hosts.live.LiveHost` takes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hostname: str = Field(default="box", description="the host's name (hostname, /etc/hosts)")
    memory: str | int = Field(default="512MiB", description="memory cap (OOM kill past it)")
    cpus: float = Field(default=1.0, gt=0, description="CPU quota")
    pids: int = Field(default=256, ge=8, description="process and thread cap")
    disk: str | int = Field(default="256MiB", description="size of the bundle root, /opt")
    missing_tools: tuple[str, ...] = Field(default=(), description="tools it lacks")
    exec_timeout: float = Field(
        default=3600, gt=0, description="seconds a command may run when exec gives no timeout"
    )


def _config(config: SandboxEnvironmentConfigType | None) -> ReplisimSandboxConfig:
    if config is None:
        return ReplisimSandboxConfig()
    if isinstance(config, ReplisimSandboxConfig):
        return config
    if isinstance(config, BaseModel):
        return ReplisimSandboxConfig.model_validate(config.model_dump())
    raise ValueError(f"a replisim sandbox takes a ReplisimSandboxConfig, not a file ({config!r})")


def _inspect_runs() -> list[str]:
    """The run ids of the hosts Inspect samples made (``inspect-<id>``), local or Docker."""
    runs = {p.name for p in state_root().glob(f"{RUN_PREFIX}*")}
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            for container in client.containers.list(
                all=True, filters={"label": RUN_LABEL}, ignore_removed=True
            ):
                run = container.labels.get(RUN_LABEL, "")
                if run.startswith(RUN_PREFIX):
                    runs.add(run)
        finally:
            client.close()
    except Exception:  # no SDK or no engine: only local hosts to clean
        pass
    return sorted(runs)


class _ReplisimSandbox(SandboxEnvironment):
    """One sample's live host."""

    backend: ClassVar[str] = "abstract"

    def __init__(self, host: LiveHost, config: ReplisimSandboxConfig) -> None:
        super().__init__()
        self.host = host
        self.config = config

    # ------------------------------------------------------------- lifecycle
    @classmethod
    def config_deserialize(cls, config: dict[str, Any]) -> BaseModel:
        return ReplisimSandboxConfig(**config)

    @classmethod
    def default_concurrency(cls) -> int | None:
        from sim.capacity import (
            CONTROLLER_MEMORY,
            MIN_HOST_MEMORY,
            Reservation,
            fitting,
            machine_capacity,
        )
        from sim.hosts.live import parse_memory

        default = ReplisimSandboxConfig()
        memory = max(parse_memory(default.memory) or 0, MIN_HOST_MEMORY)
        # A sandbox's controller is a few threads in Inspect's process, not a pool worker.
        one = Reservation(memory + CONTROLLER_MEMORY // 8, default.pids + 8, default.cpus, 1)
        count, _ = fitting(machine_capacity(), one)
        return max(count, 1)

    @classmethod
    async def task_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None) -> None:
        _config(config)  # a bad configuration fails the task before any sample
        if cls.backend == "docker":
            from sim.hosts.docker_image import build_base_image

            await anyio.to_thread.run_sync(build_base_image)  # kept as is if unchanged

    @classmethod
    async def sample_init(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        metadata: dict[str, str],
    ) -> dict[str, SandboxEnvironment]:
        settings = _config(config)
        machine = Machine(
            hostname=settings.hostname, missing_tools=frozenset(settings.missing_tools)
        )
        host = live_host(
            cls.backend,
            settings.hostname,
            run_id=f"{RUN_PREFIX}{uuid.uuid4().hex[:12]}",
            memory=settings.memory,
            cpus=settings.cpus,
            pids=settings.pids,
            machine=machine,
            workdir_size=settings.disk,
        )
        try:
            await anyio.to_thread.run_sync(_STARTER.submit(host.start).result)
        except BaseException:
            await anyio.to_thread.run_sync(host.close)
            raise
        return {"default": cls(host, settings)}

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for environment in environments.values():
            if isinstance(environment, _ReplisimSandbox):
                await anyio.to_thread.run_sync(environment.host.close)

    @classmethod
    async def cli_cleanup(cls, id: str | None) -> None:
        for run in [id] if id else await anyio.to_thread.run_sync(_inspect_runs):
            await anyio.to_thread.run_sync(clean, run)

    # -------------------------------------------------------------- commands
    async def exec(
        self,
        cmd: list[str],
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        timeout: int | None = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        machine = self.host.machine
        if user not in (None, machine.user, str(machine.uid)):
            raise SandboxUserUnsupportedError(
                f"a replisim host runs commands as {machine.user} only, not {user!r}"
            )
        seconds = float(timeout) if timeout is not None else self.config.exec_timeout
        try:
            result = await anyio.to_thread.run_sync(
                lambda: self.host.exec(cmd, seconds, input=input, cwd=cwd, env=env)
            )
        except LiveHostError as err:
            raise SandboxUnavailableError(str(err)) from err
        if result.timed_out:
            raise TimeoutError(f"command timed out after {seconds:g} s: {cmd!r}")
        if result.returncode == 126 and "permission denied" in result.stderr.lower():
            # As Inspect's own sandboxes do: a file that may not be executed is refused.
            raise PermissionError(result.stderr.strip() or f"{cmd[0]}: permission denied")
        limit = SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE
        for stream in (result.stdout, result.stderr):
            if len(stream.encode()) > limit:
                raise OutputLimitExceededError(
                    SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE_STR, stream[-limit:]
                )
        return ExecResult(
            success=result.returncode == 0,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
        )

    async def write_file(self, file: str, contents: str | bytes) -> None:
        try:
            await anyio.to_thread.run_sync(self.host.write_file, file, contents)
        except LiveHostError as err:
            raise SandboxUnavailableError(str(err)) from err

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> Union[str | bytes]:  # noqa: UP007
        try:
            data = await anyio.to_thread.run_sync(self.host.read_file, file)
        except LiveHostError as err:
            raise SandboxUnavailableError(str(err)) from err
        if len(data) > SandboxEnvironmentLimits.MAX_READ_FILE_SIZE:
            raise OutputLimitExceededError(SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR, None)
        return data.decode("utf-8") if text else data

    async def connection(self, *, user: str | None = None) -> SandboxConnection:
        name = getattr(self.host, "container_name", None)
        if name is None:
            raise NotImplementedError("a bubblewrap host offers no connection")
        machine = self.host.machine
        command = f"docker exec -it -u {machine.uid} -w {machine.home} {name} bash"
        return SandboxConnection(type="docker", command=command, container=name)


@sandboxenv(name="replisim-docker")
class ReplisimDockerSandbox(_ReplisimSandbox):
    """A replisim Docker host (one hardened container per sample)."""

    backend: ClassVar[str] = "docker"


@sandboxenv(name="replisim-local")
class ReplisimLocalSandbox(_ReplisimSandbox):
    """A replisim bubblewrap host (one sandbox per sample, no Docker needed)."""

    backend: ClassVar[str] = "local"
