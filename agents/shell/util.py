"""Formatting helpers: sizes as the tools print them, dates, modes, escapes, patterns."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from agents.shell.core import BASE_TIME
from agents.shell.syntax import C_ESCAPES


def human_size(n: float, suffix: str = "") -> str:
    """Sizes as ``ls -h``/``du -h``/``df -h`` print them (powers of 1024, rounded up)."""
    n = min(n, 2.0**60)
    if n < 1024:
        return f"{math.ceil(n)}{suffix}" if n else "0"
    for unit in "KMGTPE":
        n /= 1024
        if n < 1024 or unit == "E":
            if n < 10:
                tenth = math.ceil(n * 10 - 1e-9) / 10
                if tenth < 10:
                    return f"{tenth:.1f}{unit}{suffix}"
            whole = math.ceil(n - 1e-9)
            if whole < 1024 or unit == "E":
                return f"{whole}{unit}{suffix}"
    return f"{n:.0f}E"


def human_free(n: float) -> str:
    """Sizes as ``free -h`` prints them (``1.5Gi``, ``62Gi``, ``0B``)."""
    n = min(n, 2.0**60)
    if n < 1024:
        return f"{n:.0f}B"
    for unit in "KMGTPE":
        n /= 1024
        if n < 1024 or unit == "E":
            return f"{n:.1f}{unit}i" if n < 10 else f"{n:.0f}{unit}i"
    return f"{n:.0f}Ei"


def finite(x: float, cap: float = 2.0**60) -> float:
    return cap if math.isinf(x) else x


def when(t: float) -> datetime:
    return BASE_TIME + timedelta(seconds=t)


def ls_date(t: float) -> str:
    d = when(t)
    return f"{d:%b} {d.day:>2} {d:%H:%M}"


def log_date(t: float) -> str:
    return f"{when(t):%m-%d %H:%M:%S}"


def mode_text(kind: str, mode: int) -> str:
    bits = "".join(ch if mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    if mode & 0o1000:
        bits = bits[:-1] + ("t" if mode & 1 else "T")
    return ("d" if kind == "dir" else "-") + bits


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def join_shown(shown: str, name: str) -> str:
    if shown in ("", "/"):
        return shown + name
    return shown + "/" + name


SIGNUMS = {
    "SIGHUP": 1,
    "SIGINT": 2,
    "SIGQUIT": 3,
    "SIGKILL": 9,
    "SIGTERM": 15,
    "SIGCONT": 18,
    "SIGSTOP": 19,
    "0": 0,
}


def signal_name(text: str) -> str | None:
    text = text.upper()
    if text.isdigit():
        for name, number in SIGNUMS.items():
            if number == int(text):
                return name
        return None
    name = text if text.startswith("SIG") else "SIG" + text
    return name if name in SIGNUMS else None


def unescape(text: str) -> tuple[str, bool]:
    """Backslash escapes as ``echo -e`` reads them; (text, whether ``\\c`` stopped it)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "c":
                return "".join(out), True
            if nxt in C_ESCAPES and nxt not in "'\"":
                out.append(C_ESCAPES[nxt])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out), False


def char_set(spec: str) -> list[str]:
    """The characters of a ``tr`` set: ranges (``a-z``), escapes, classes."""
    classes = {
        "[:upper:]": "A-Z",
        "[:lower:]": "a-z",
        "[:digit:]": "0-9",
        "[:space:]": " \\t\\n",
        "[:alpha:]": "a-zA-Z",
        "[:alnum:]": "a-zA-Z0-9",
    }
    for name, expansion in classes.items():
        spec = spec.replace(name, expansion)
    text = unescape(spec)[0]
    chars: list[str] = []
    k = 0
    while k < len(text):
        if k + 2 < len(text) and text[k + 1] == "-":
            chars += [chr(c) for c in range(ord(text[k]), ord(text[k + 2]) + 1)]
            k += 3
        else:
            chars.append(text[k])
            k += 1
    return chars


def bre(pattern: str) -> str:
    """A POSIX basic regular expression in Python's syntax."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(nxt if nxt in "|+?(){}" else "\\" + nxt)
            i += 2
            continue
        out.append("\\" + c if c in "|+?(){}" else c)
        i += 1
    return "".join(out)


def binary_preview(path: str) -> str:
    if path.endswith(".safetensors"):
        return (
            '\x88\x8b\x01\x00\x00\x00\x00\x00{"__metadata__":{"format":"pt"},'
            '"lm_head.weight":{"dtype":"BF16","shape":[152064,8192],'
            '"data_offsets":[0,2491416576]},"model.embed_tokens.weight":{"dtype":"BF16",'
            '"shape":[152064,8192],"data_offsets":[2491416576,4982833152]}, ...\x00\x00\n'
        )
    return "\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00>\x00\x01\n"


def copy_error(tool: str, reason: str, src: str, dst: str) -> tuple[str, int]:
    """The world's failure reason (worded for ``cp``) as ``tool`` words it, and its code."""
    if tool == "cp":
        return reason, 1
    if "No space left on device" in reason:
        if tool == "rsync":
            return (
                f'rsync: [receiver] write failed on "{dst}/weights/model.safetensors": No '
                "space left on device (28)\nrsync error: error in file IO (code 11) at "
                "receiver.c(380) [receiver=3.2.7]"
            ), 11
        return f'scp: write remote "{dst}/weights/model.safetensors": Failure', 1
    if reason.startswith("ssh:"):
        closing = (
            "scp: Connection closed"
            if tool == "scp"
            else "rsync error: unexplained error (code 255) at io.c(231) [sender=3.2.7]"
        )
        return f"{reason}\n{closing}", 255
    return (f"{tool}: {reason[4:]}" if reason.startswith("cp: ") else reason), 1


def curl_write_out(fmt: str, code: int, size: int) -> str:
    """``curl -w``: ``%{http_code}`` and friends, with ``\\n`` escapes."""
    if not fmt:
        return ""
    text = (
        fmt.replace("%{http_code}", f"{code:03d}")
        .replace("%{response_code}", f"{code:03d}")
        .replace("%{size_download}", str(size))
        .replace("%{time_total}", "0.004512")
    )
    return unescape(text)[0]
