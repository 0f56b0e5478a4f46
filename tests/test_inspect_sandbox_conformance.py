"""Inspect's own conformance suite for sandbox providers, run against replisim's live
hosts as Inspect sandboxes (``replisim-docker`` and ``replisim-local``).

Each check gets a fresh host (the suite's ``sandbox_env`` fixture). The checks a replisim
host cannot pass by design are marked as expected failures, with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents.inspect_model import inspect_available
from tests.live_support import skip_unless

if not inspect_available():
    pytest.skip(
        "inspect-ai is not installed: pip install 'replisim[inspect]'", allow_module_level=True
    )

from inspect_ai.util._sandbox.self_check import *  # noqa: F403

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: What a replisim host does not do, by design.
KNOWN = {
    # Commands run as the machine's user only: no root, no other user.
    "test_exec_as_user": "a replisim host runs commands as its user (agent) only",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["docker", "local"])
async def sandbox_env(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    from sim.hosts.inspect_sandbox import ReplisimDockerSandbox, ReplisimLocalSandbox

    skip_unless(request.param)
    why = KNOWN.get(request.node.originalname)
    if why:
        request.node.add_marker(pytest.mark.xfail(reason=why, strict=True))
    kind = ReplisimDockerSandbox if request.param == "docker" else ReplisimLocalSandbox
    await kind.task_init("conformance", None)
    environments = await kind.sample_init("conformance", None, {})
    try:
        yield environments["default"]
    finally:
        await kind.sample_cleanup("conformance", None, environments, False)
