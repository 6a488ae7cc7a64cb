"""An incremental Server-Sent Events decoder (the WHATWG "event stream" interpretation).

Fed raw bytes in chunks of any size, it yields one :class:`Message` per dispatched event:
lines end in CRLF, LF or CR (a CR at the end of a chunk waits for the next one, in case an LF
follows); ``:`` lines are comments (the daemon's keep-alives); ``data`` lines of one event are
joined with LF; an event with no data is not dispatched; an unfinished event at the end of the
stream is dropped. Lines are split on those three terminators only: JSON data may hold U+2028
and other characters that ``str.splitlines`` would split on.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Message", "SSEDecoder"]


@dataclass(frozen=True)
class Message:
    event: str
    data: str
    id: str
    retry: int | None = None


class SSEDecoder:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self.last_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[Message]:
        """Decode a chunk; return the events it completed."""
        self._buf += chunk
        if not self._started:
            if len(self._buf) < 3 and b"\xef\xbb\xbf".startswith(bytes(self._buf)):
                return []  # maybe the start of a BOM
            if self._buf.startswith(b"\xef\xbb\xbf"):
                del self._buf[:3]
            self._started = True
        out: list[Message] = []
        start = 0
        buf = self._buf
        n = len(buf)
        i = 0
        while i < n:
            b = buf[i]
            if b == 0x0A:  # LF
                self._line(bytes(buf[start:i]), out)
                i += 1
                start = i
            elif b == 0x0D:  # CR, maybe CRLF
                if i + 1 == n:
                    break  # wait: an LF may come in the next chunk
                self._line(bytes(buf[start:i]), out)
                i += 2 if buf[i + 1] == 0x0A else 1
                start = i
            else:
                i += 1
        del buf[:start]
        return out

    def close(self) -> list[Message]:
        """End of stream: a pending lone CR ends a line; an unfinished event is dropped."""
        out: list[Message] = []
        if self._buf.endswith(b"\r"):
            self._line(bytes(self._buf[:-1]), out)
        self._buf.clear()
        self._event = ""
        self._data = []
        self._has_data = False
        return out

    def _line(self, raw: bytes, out: list[Message]) -> None:
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if self._has_data:
                out.append(
                    Message(
                        event=self._event or "message",
                        data="\n".join(self._data),
                        id=self.last_id,
                        retry=self.retry,
                    )
                )
            self._event = ""
            self._data = []
            self._has_data = False
            return
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "id":
            if "\0" not in value:
                self.last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
