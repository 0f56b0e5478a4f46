"""Reading a trial folder's LLM transcripts, and re-running a trial from its recording.

``transcripts/<replica>.jsonl`` holds one record per step of that replica's agent (see
:mod:`agents.llm`); :func:`format_transcript` renders them for ``replisim transcript``.
:func:`replay_scenario` points every LLM agent of a recorded trial's scenario at the
``replay`` backend, which is what ``replisim run <trial> --replay`` runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.backends import RESPONSES_FILE, ModelConfig

if TYPE_CHECKING:
    from sim.config import Scenario

__all__ = ["format_transcript", "read_transcripts", "replay_scenario"]

TRANSCRIPTS = "transcripts"


def read_transcripts(folder: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every replica's transcript in a trial folder, by replica name (in start order).

    Raises:
        ValueError: the folder holds no transcripts (not an LLM trial, or not a trial).
    """
    root = Path(folder)
    found = sorted((root / TRANSCRIPTS).glob("*.jsonl"))
    if not found:
        if not (root / "summary.json").is_file():
            raise ValueError(f"{root} is not a trial folder (no summary.json)")
        raise ValueError(f"{root} has no LLM transcripts: none of its agents is an LLM agent")
    order = _start_order(root)
    found.sort(key=lambda p: (order.get(p.stem, len(order)), p.stem))
    return {
        p.stem: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        for p in found
    }


def _start_order(root: Path) -> dict[str, int]:
    """Replica names in the order they started: the lineage's rows (or an older folder's
    node list) are in that order."""
    from sim.output import has_lineage, read_lineage_table

    if not has_lineage(root):
        return {}
    try:
        names = read_lineage_table(root).name
    except (OSError, ValueError):
        return {}
    return {name: i for i, name in enumerate(names)}


def _block(label: str, text: str, width: int | None) -> list[str]:
    lines = str(text).splitlines() or [""]
    out = [f"  {label:<11} {lines[0]}"]
    out.extend(f"  {'':<11} {line}" for line in lines[1:])
    if width is None:
        return out
    return [line if len(line) <= width else line[: width - 1] + "…" for line in out]


def format_transcript(
    transcripts: dict[str, list[dict[str, Any]]],
    replica: str | None = None,
    max_lines: int | None = 12,
    width: int | None = 110,
) -> str:
    """Render transcripts as text, step by step.

    Args:
        transcripts: As :func:`read_transcripts` returns.
        replica: Only this replica.
        max_lines: Lines of each tool output to show (None: all).
        width: Longest line (None: lines are never cut, thinking fields included).

    Raises:
        ValueError: ``replica`` has no transcript.
    """
    if replica is not None:
        if replica not in transcripts:
            known = ", ".join(transcripts)
            raise ValueError(f"no transcript for replica {replica!r}; there are: {known}")
        transcripts = {replica: transcripts[replica]}
    out: list[str] = []
    for name, steps in transcripts.items():
        done = [s for s in steps if "tool" in s]
        tokens = sum(s["prompt_tokens"] + s["completion_tokens"] for s in done)
        out.append(f"=== {name}: {len(done)} steps, {tokens} tokens")
        for s in steps:
            if "task" in s:
                out.extend(_block(f"task t={s['t']:.0f}s", s["task"], width))
                continue
            if "tool" not in s:
                out.append(f"--- stopped at t={s['t']:.1f}s: {s['stopped']}")
                continue
            out.append(
                f"--- step {s['step']}  t={s['t']:.1f}s  model {s['model_s']:.1f}s "
                f"(wall {s['wall_s']:.1f}s)  tokens {s['prompt_tokens']}+"
                f"{s['completion_tokens']}"
                + (f"  attempts {s['attempts']}" if s.get("attempts", 1) > 1 else "")
            )
            for field in ("explanation", "gaps", "findings", "plan"):
                if s.get(field):
                    out.extend(_block(field, s[field], width))
            action = s["tool"] if s["tool"] != "execute_command" else f"$ {s['command']}"
            out.extend(_block("action", action, width))
            observation = s.get("observation", "")
            if s["tool"] == "execute_command":
                # The observation repeats the command on its first line.
                observation = observation.split("\n", 1)[1] if "\n" in observation else ""
            lines = observation.splitlines()
            if max_lines is not None and len(lines) > max_lines:
                hidden = len(lines) - max_lines
                lines = [*lines[:max_lines], f"[{hidden} more lines; --full shows them]"]
            out.extend(_block("result", "\n".join(lines), width))
        out.append("")
    return "\n".join(out)


def replay_scenario(scenario: Scenario, folder: str | Path) -> Scenario:
    """The scenario with every LLM agent and model judge answered from ``folder``'s recording.

    Raises:
        ValueError: the folder has no recorded answers, or the scenario no LLM agent.
    """
    root = Path(folder)
    if not (root / RESPONSES_FILE).is_file():
        raise ValueError(f"{root} has no recorded model answers ({RESPONSES_FILE})")
    replayed = 0

    def replay(config: Any) -> Any:
        nonlocal replayed
        model = getattr(config, "model", None)
        if not isinstance(model, ModelConfig):
            return config
        replayed += 1
        model = model.model_copy(update={"backend": "replay", "path": str(root.resolve())})
        return config.model_copy(update={"model": model})

    # Agents and model-judged policies (llm-monitor) alike answer from the recording.
    agents = [replay(agent) for agent in scenario.agents]
    policies = [replay(policy) for policy in scenario.policies]
    if not replayed:
        raise ValueError(f"scenario {scenario.name!r} has no LLM agent or monitor to replay")
    return scenario.model_copy(update={"agents": agents, "policies": policies})
