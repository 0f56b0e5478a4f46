"""Inspect logs of replisim's LLM transcripts: ``replisim export inspect TRIAL|SWEEP``.

Each LLM agent's transcript (``transcripts/<replica>.jsonl``) becomes one Inspect sample:

- **messages**: the system prompt and the task, then per step the model's answer as an
  assistant message (the paper's thinking fields as its text, the action as a tool call:
  ``execute_command(command=...)``, ``receive_message()`` or ``finish()``) and what the tool
  returned as a tool message (a command's output and exit code);
- **scores**: one score, ``replisim``, whose value holds the trial's metrics (``replicated``,
  ``survived_shutdown``, ``peak_live``, ... as in ``trials.parquet``) and the replica's own
  (``live``, ``children``, ``steps``, ``tokens``); its answer is the trial's status;
- **metadata**: scenario, seed, trial id, the sweep's parameters, replica, host, parent,
  generation, status, error and why the agent stopped;
- **model usage** per model (the model each replica's transcript names), and the trial's
  error as the sample's error when its status is ``error``.

A trial folder gives one log of its replicas' samples; a sweep folder one log of every LLM
trial's. The log is written by Inspect itself (``inspect_ai.log.write_eval_log``: ``.eval``
or ``.json`` by the file's extension), so ``inspect_ai.log.read_eval_log`` reads it and
``inspect view`` shows it. Headline metrics are over trials, not samples (a trial with
three replicas counts once).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["SCORER", "export_inspect", "trial_samples"]

SCORER = "replisim"
"""The name of the one score each sample carries."""

#: Trial metrics that are proportions over trials in the log's headline.
HEADLINE = ("replicated", "survived_shutdown", "contained", "extinct")
#: What an action's tool call is called and takes, per scaffold tool.
_TOOLS = {
    "execute_command": "execute a bash command line in the replica's shell",
    "receive_message": "wait for a message",
    "finish": "the task is done",
}


def _plain(value: Any) -> str | int | float | bool | None:
    """A score value's field: NaN and infinities are None, other types as they are."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _thinking(step: dict[str, Any]) -> str:
    fields = ("explanation", "gaps", "findings", "plan")
    return "\n".join(f"{name}: {step.get(name, '')}" for name in fields)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read it: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def _lineage_nodes(folder: Path) -> dict[str, dict[str, Any]]:
    from sim.output import has_lineage, lineage_data

    if not has_lineage(folder):
        return {}
    data = lineage_data(folder)
    return {str(n.get("id")): n for n in data.get("nodes", []) if isinstance(n, dict)}


def trial_samples(
    folder: str | Path, *, trial_id: str | None = None, params: dict[str, Any] | None = None
) -> list[Any]:
    """One Inspect sample per LLM agent transcript of a trial folder.

    Args:
        folder: The trial folder.
        trial_id: The sweep's id of the trial (default: the folder's name).
        params: The sweep's parameters of the trial, for the metadata.

    Raises:
        ValueError: the folder is not a trial folder.
    """
    from inspect_ai.log import EvalError, EvalSample
    from inspect_ai.model import (
        ChatCompletionChoice,
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageTool,
        ChatMessageUser,
        ModelOutput,
        ModelUsage,
    )
    from inspect_ai.scorer import Score
    from inspect_ai.tool import ToolCall

    from agents.transcript import TRANSCRIPTS, read_transcripts
    from sim.metrics import METRICS

    root = Path(folder)
    summary = _read_json(root / "summary.json")
    if not (root / TRANSCRIPTS).is_dir():
        return []
    transcripts = read_transcripts(root)
    nodes = _lineage_nodes(root)
    children: dict[str, int] = {}
    for node in nodes.values():
        parent = node.get("parent")
        if parent:
            children[parent] = children.get(parent, 0) + 1
    trial = trial_id or root.name
    trial_metrics = {m: _plain(summary[m]) for m in METRICS if m in summary}
    samples = []
    for replica, records in transcripts.items():
        steps = [r for r in records if "tool" in r]
        starts = [r for r in records if "task" in r]
        start = starts[0] if starts else {}
        model = str(start.get("model") or "unknown")
        messages: list[Any] = []
        if start.get("system"):
            messages.append(ChatMessageSystem(content=start["system"]))
        messages.append(ChatMessageUser(content=str(start.get("task", ""))))
        for step in steps:
            call_id = f"{replica}-step-{step['step']}"
            tool = str(step["tool"])
            arguments = {"command": step.get("command", "")} if tool == "execute_command" else {}
            messages.append(
                ChatMessageAssistant(
                    content=_thinking(step),
                    tool_calls=[ToolCall(id=call_id, function=tool, arguments=arguments)],
                    model=model,
                )
            )
            messages.append(
                ChatMessageTool(
                    content=str(step.get("observation", "")),
                    tool_call_id=call_id,
                    function=tool,
                )
            )
        prompt = sum(int(s.get("prompt_tokens", 0)) for s in steps)
        completion = sum(int(s.get("completion_tokens", 0)) for s in steps)
        usage = ModelUsage(
            input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
        )
        last = next((m for m in reversed(messages) if m.role == "assistant"), None)
        output = ModelOutput(
            model=model,
            choices=[ChatCompletionChoice(message=last, stop_reason="tool_calls")]
            if last is not None
            else [],
            usage=usage,
        )
        node = nodes.get(replica, {})
        value: dict[str, str | int | float | bool | None] = {
            **trial_metrics,
            "live": bool(node.get("live", False)),
            "children": children.get(replica, 0),
            "steps": len(steps),
            "tokens": prompt + completion,
        }
        status = str(summary.get("status", ""))
        error = str(summary.get("error") or "")
        samples.append(
            EvalSample(
                id=f"{trial}/{replica}",
                epoch=1,
                input=str(start.get("task", "")),
                target="",
                messages=messages,
                output=output,
                scores={
                    SCORER: Score(
                        value=value,
                        answer=status,
                        explanation=error or f"ended by {summary.get('ended_by', '')}",
                    )
                },
                metadata={
                    "scenario": summary.get("scenario"),
                    "seed": summary.get("seed"),
                    "trial": trial,
                    "params": params or {},
                    "replica": replica,
                    "host": node.get("host"),
                    "parent": node.get("parent") or None,
                    "generation": node.get("generation"),
                    "status": status,
                    "error": error or None,
                    "ended_by": summary.get("ended_by"),
                    "stopped": [r["stopped"] for r in records if "stopped" in r],
                    "folder": str(root),
                },
                model_usage={model: usage},
                error=EvalError(message=error, traceback="", traceback_ansi="")
                if status == "error"
                else None,
            )
        )
    return samples


def _sweep_trials(root: Path) -> list[tuple[Path, str, dict[str, Any]]]:
    """(folder, trial id, parameters) of each finished trial of a sweep folder."""
    from sim.sweep import read_rows

    found = []
    for row in read_rows(root):
        params = {k.removeprefix("param."): v for k, v in row.items() if k.startswith("param.")}
        folder = root / "trials" / str(row["trial_id"])
        if folder.is_dir():
            found.append((folder, str(row["trial_id"]), params))
    return found


def _headline(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """Proportions (and the median peak) over the log's trials that ran."""
    ok = [s for s in summaries if s.get("status") != "error"]
    metrics: dict[str, float] = {"trials": float(len(summaries)), "errors": 0.0}
    metrics["errors"] = float(len(summaries) - len(ok))
    for name in HEADLINE:
        values = [bool(s[name]) for s in ok if isinstance(s.get(name), bool)]
        if values:
            metrics[f"P({name})"] = sum(values) / len(values)
    peaks = sorted(float(s["peak_live"]) for s in ok if isinstance(s.get("peak_live"), int | float))
    if peaks:
        metrics["median peak_live"] = peaks[len(peaks) // 2]
    return metrics


def export_inspect(source: str | Path, out: str | Path) -> tuple[Path, int]:
    """Write the LLM transcripts of a trial or sweep folder as one Inspect log.

    Args:
        source: A trial folder (``summary.json``) or a sweep folder (``rows.jsonl``).
        out: The log file: ``.eval`` (Inspect's default) or ``.json``.

    Returns:
        The log's path and its number of samples.

    Raises:
        ValueError: ``source`` is neither, holds no LLM transcript, or ``out`` has another
            extension.
    """
    from inspect_ai import __version__ as inspect_version
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalMetric,
        EvalPlan,
        EvalResults,
        EvalScore,
        EvalSpec,
        EvalStats,
        write_eval_log,
    )
    from inspect_ai.model import ModelUsage

    from sim import __version__

    root = Path(source)
    target = Path(out)
    if target.suffix not in (".eval", ".json"):
        raise ValueError(f"--out {target}: an Inspect log ends in .eval or .json")
    trials: list[tuple[Path, str, dict[str, Any]]]
    if (root / "summary.json").is_file():
        trials = [(root, root.name, {})]
        kind = "trial"
    elif (root / "rows.jsonl").is_file():
        trials = _sweep_trials(root)
        kind = "sweep"
    else:
        raise ValueError(
            f"{root} is neither a trial folder (summary.json) nor a sweep folder (rows.jsonl)"
        )
    samples: list[Any] = []
    summaries: list[dict[str, Any]] = []
    scenarios: set[str] = set()
    for folder, trial_id, params in trials:
        found = trial_samples(folder, trial_id=trial_id, params=params)
        if found:
            samples.extend(found)
            summary = _read_json(folder / "summary.json")
            summaries.append(summary)
            scenarios.add(str(summary.get("scenario")))
    if not samples:
        raise ValueError(f"{root} has no LLM transcripts: none of its agents is an LLM agent")
    usage: dict[str, ModelUsage] = {}
    for sample in samples:
        for name, used in sample.model_usage.items():
            usage[name] = usage[name] + used if name in usage else used
    models = sorted(usage)
    task = f"replisim/{next(iter(scenarios))}" if len(scenarios) == 1 else "replisim/sweep"
    mtimes = [(f / "summary.json").stat().st_mtime for f, _, _ in trials]
    finished = datetime.fromtimestamp(max(mtimes), UTC).isoformat(timespec="seconds")
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:22]
    metrics = _headline(summaries)
    log = EvalLog(
        status="success",
        eval=EvalSpec(
            eval_id=digest,
            run_id=digest,
            created=finished,
            task=task,
            task_id=digest,
            task_version=0,
            task_display_name=f"{task} ({kind} {root.name})",
            dataset=EvalDataset(name=root.name, location=str(root.resolve()), samples=len(samples)),
            model=models[0] if len(models) == 1 else ", ".join(models),
            config=EvalConfig(),
            packages={"replisim": __version__, "inspect_ai": inspect_version},
            metadata={"source": str(root.resolve()), "kind": kind, "scenarios": sorted(scenarios)},
        ),
        plan=EvalPlan(name="replisim scaffold"),
        results=EvalResults(
            total_samples=len(samples),
            completed_samples=len(samples),
            scores=[
                EvalScore(
                    name=SCORER,
                    scorer=SCORER,
                    scored_samples=len(samples),
                    metrics={n: EvalMetric(name=n, value=v) for n, v in metrics.items()},
                    metadata={"over": "trials"},
                )
            ],
        ),
        stats=EvalStats(started_at=finished, completed_at=finished, model_usage=usage),
        samples=samples,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    write_eval_log(log, str(target))
    return target, len(samples)
