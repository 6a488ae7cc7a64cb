"""schemathesis hooks for tests/contract/run.py (loaded through SCHEMATHESIS_HOOKS).

`PUT /v1/leases/{id}/archive/{path}` takes `application/x-tar`, which schemathesis cannot
build from a schema: this gives it a strategy that builds real tar streams (regular files and
directories with safe relative names and small contents), so the operation is exercised
rather than reported as "serialization not possible".
"""

from __future__ import annotations

import io
import tarfile

import schemathesis
from hypothesis import strategies as st

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..")
)
_entry = st.tuples(
    st.lists(_names, min_size=1, max_size=3).map("/".join),
    st.one_of(st.none(), st.binary(max_size=256)),
)


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        seen: set[str] = set()
        for name, data in entries:
            if name in seen or any(name.startswith(s + "/") or s.startswith(name + "/") for s in seen):
                continue
            seen.add(name)
            info = tarfile.TarInfo(name)
            info.mode = 0o644 if data is not None else 0o755
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


schemathesis.openapi.media_type(
    "application/x-tar", st.lists(_entry, max_size=4).map(_tar)
)
