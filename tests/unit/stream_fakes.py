"""In-memory stand-ins for the streaming job's status row (tests of argus.supervision)."""

from __future__ import annotations

import json
from pathlib import Path

from argus.supervision.driver import LeaseKeeper
from argus.supervision.status import StreamStatus, StreamStatusStore

#: a StreamingQueryProgress recorded from the Spark 4 streaming job (Kafka source, caught up)
PROGRESS = json.loads((Path(__file__).parent / "data" / "stream_progress.json").read_text())


class MemoryStatusStore(StreamStatusStore):
    """The status store over a dict: checkAndPut compares the lease cell's bytes, None = absent."""

    def __init__(self):
        super().__init__("memory")
        self.rows: dict[str, dict[bytes, bytes]] = {}
        self.fail = False

    def ensure_table(self) -> None:
        pass

    def read(self, query: str) -> StreamStatus:
        if self.fail:
            raise OSError("HBase unreachable")
        return StreamStatus.from_cells(query, dict(self.rows.get(query, {})))

    def check_and_put(self, query, expected_lease, values) -> bool:
        if self.fail:
            raise OSError("HBase unreachable")
        row = self.rows.setdefault(query, {})
        if row.get(b"lease") != expected_lease:
            return False
        for name, value in values.items():
            row[name.encode()] = value if isinstance(value, bytes) else (
                json.dumps(value).encode() if isinstance(value, (dict, list)) else str(value).encode())
        return True


def keeper(store, ttl_s=15.0, **kw) -> tuple[LeaseKeeper, list[str]]:
    lost: list[str] = []
    return LeaseKeeper(store, "q", ttl_s=ttl_s, on_lost=lost.append, **kw), lost
