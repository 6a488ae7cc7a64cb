#!/usr/bin/env python3
"""Generate the blocking client from the async one: each ``src/warmpool/_async*.py`` gives
``_sync*.py`` (``_async.py`` -> ``_sync.py``, ``_async_streams.py`` -> ``_sync_streams.py``, ...).

As httpcore's ``scripts/unasync.py`` (after python-trio/unasync): a table of regex
replacements applied in order to each line, comments and docstrings included (``AsyncClient``
-> ``Client``, ``async with`` -> ``with``, ``await`` dropped, ``aclose`` -> ``close``, ...).
What the two sides do genuinely differently is hand-written in ``_backends.py``, whose
``AsyncX`` and ``async_x`` names become ``X`` and ``x``.

    python3 clients/python/scripts/unasync.py           # regenerate
    python3 clients/python/scripts/unasync.py --check   # fail if a generated file is stale

Standard library only. Every rule must be used at least once, and the output must hold no
``async``/``await`` and no async name, else this fails (a rule gone stale, or a new async
construct the table does not know).
"""

from __future__ import annotations

import difflib
import io
import re
import sys
import tokenize
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "src" / "warmpool"

# The first line of a source, and what it becomes.
SOURCE_HEADER = "# The source of {out}: edit this file, then run scripts/unasync.py.\n"
GENERATED_HEADER = "# Generated from {src} by scripts/unasync.py; do not edit.\n"

SUBS: list[tuple[str, str]] = [
    # This project's own: the generated modules import one another, the terminal uses the
    # websockets library's threaded client, and the hand-written twins of _backends.py.
    (r"\bfrom \._async", "from ._sync"),
    (r"\bwebsockets\.asyncio\.client\b", "websockets.sync.client"),
    (r"\basync_([a-z]\w*)", r"\1"),
    # Docstring words true of the async client only, and the articles that change with them.
    (r" \(asyncio only, not trio\)", ""),
    (r" \(or an async one\)", ""),
    (r"\bAn async client\b", "A blocking client"),
    (r"\ban (`*)async (with|for)\b", r"a \1\2"),
    # unasync's own.
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\basync (def|with|for)\b", r"\1"),
    # ``(await f(x)).y`` -> ``f(x).y``: the parentheses only held the await.
    (r"(?<![\w)\]])\(await ([\w.]+\([^()]*\))\)", r"\1"),
    (r"\bawait ", ""),
    (r"\b__a(enter|exit|iter|next)__\b", r"__\1__"),
    (r"\ba(close|read|iter_bytes|iter_lines|next)\b", r"\1"),
]
COMPILED = [(re.compile(pattern), repl) for pattern, repl in SUBS]

# A name left in the output that matches this means the table missed something.
LEFTOVER = re.compile(
    r"async|await|Async|^__a(enter|exit|iter|next)__$|^a(close|read|iter_\w+|next)$"
)


def unasync_line(line: str, used: set[int]) -> str:
    for i, (regex, repl) in enumerate(COMPILED):
        new = regex.sub(repl, line)
        if new != line:
            used.add(i)
            line = new
    return line


def unasync_text(src: Path, out: Path, text: str, used: set[int]) -> str:
    lines = text.splitlines(keepends=True)
    header = SOURCE_HEADER.format(out=out.name)
    if not lines or lines[0] != header:
        raise SystemExit(f"{src}: its first line must be {header!r}")
    body = "".join(unasync_line(line, used) for line in lines[1:])
    for tok in tokenize.generate_tokens(io.StringIO(body).readline):
        if tok.type == tokenize.NAME and LEFTOVER.search(tok.string):
            raise SystemExit(
                f"{src}: line {tok.start[0] + 1} would keep {tok.string!r} in {out.name}; "
                "add a rule to scripts/unasync.py"
            )
    return GENERATED_HEADER.format(src=src.name) + body


def main() -> int:
    check = "--check" in sys.argv[1:]
    used: set[int] = set()
    stale: list[str] = []
    sources = sorted(PKG.glob("_async*.py"))
    for src in sources:
        out = src.with_name("_sync" + src.name[len("_async") :])
        want = unasync_text(src, out, src.read_text(), used)
        have = out.read_text() if out.exists() else ""
        if have == want:
            continue
        if check:
            stale.append(out.name)
            diff = difflib.unified_diff(
                have.splitlines(keepends=True),
                want.splitlines(keepends=True),
                f"{out.name} (checked in)",
                f"{out.name} (generated from {src.name})",
            )
            sys.stdout.writelines(list(diff)[:60])
        else:
            out.write_text(want)
            print(f"unasync.py: wrote {out.relative_to(PKG.parent.parent)}")
    unused = [SUBS[i] for i in range(len(SUBS)) if i not in used]
    if unused:
        print(f"unasync.py: rules no source uses (drop them): {unused}")
        return 1
    if stale:
        print(
            f"unasync.py: {', '.join(stale)} stale: edit the _async*.py sources only and run "
            "clients/python/scripts/unasync.py"
        )
        return 1
    if check:
        print(f"unasync.py: {len(sources)} generated modules are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
