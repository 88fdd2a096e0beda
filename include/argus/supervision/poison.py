"""Poison micro-batches: one that fails again and again although every record in it was
meant to be handled one by one.

What fails for one record is that record's dead letter (:mod:`argus.live.pipeline`), so a batch
that still fails every time holds something that escapes per-record handling: a record that
crashes the Python worker (a decoder segfault, an out-of-memory kill), or one the JVM side
cannot convert. Failures are counted per batch in the status row (``s:failing``), across
driver restarts. Once the same batch has failed :attr:`BatchFailures.after` times in a row,
the driver *isolates*: it runs halves of the batch as Spark jobs of their own, bisecting the
failing halves down to single records (:func:`isolate`). A single record that still fails,
while HBase and Kafka answer, is dead-lettered from the driver (stage ``isolate``); the rest
is stored as usual. The records isolated this way go to ``s:isolated``, which the supervisor
alerts on with their offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from argus.supervision.status import now_ms

Key = tuple[int, int]  # (partition, offset)
#: the isolated records kept in ``s:isolated``
ISOLATED_KEPT = 50


def isolate(keys: Sequence[Key], run: Callable[[list[Key]], None], healthy: Callable[[], None]
            ) -> list[tuple[Key, str]]:
    """Run ``keys`` in ever smaller parts until only the records that fail alone are left.

    :param keys: the batch's records, sorted.
    :param run: runs the pipeline on some of the records (raises if that fails).
    :param healthy: raises if a service the pipeline needs is down: then nothing is the
        record's fault, and the batch fails as a whole (it is retried once the service is back).
    :return: each record that fails alone, with why.
    """
    poison: list[tuple[Key, str]] = []
    todo: list[list[Key]] = [list(keys)]
    while todo:
        part = todo.pop()
        if not part:
            continue
        try:
            run(part)
            continue
        except Exception as exc:  # noqa: BLE001 - judged below
            error = f"{type(exc).__name__}: {exc}"
        if len(part) == 1:
            healthy()
            poison.append((part[0], error_summary(error)))
            if len(poison) > max_poison(len(keys)):
                raise RuntimeError(f"{len(poison)} of {len(keys)} records fail alone ({error_summary(error)}): that "
                                   "is the pipeline failing, not poison records; the batch fails as a whole")
            continue
        middle = len(part) // 2
        todo += [part[middle:], part[:middle]]
    return sorted(poison)


def max_poison(records: int) -> int:
    """Records that may fail alone in a batch of ``records`` before isolation stops: beyond
    that, what fails is the pipeline (a region server down, a broken model), and dead-letter-
    ing every record would lose valid frames."""
    return max(2, records // 10)


def ranges(keys: Sequence[Key]) -> list[tuple[int, int, int]]:
    """(partition, first, last) runs of consecutive offsets covering ``keys``."""
    out: list[tuple[int, int, int]] = []
    for partition, offset in sorted(keys):
        if out and out[-1][0] == partition and out[-1][2] == offset - 1:
            out[-1] = (partition, out[-1][1], offset)
        else:
            out.append((partition, offset, offset))
    return out


def error_summary(text: str, limit: int = 500) -> str:
    """What broke, in one line, from an exception's text. A Spark job failure carries the
    executor's failure after ``most recent failure: Lost task ...):`` and whole stack traces;
    a Python worker's exception ends its traceback with ``module.Error: message``."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    cause = re.search(r"most recent failure: Lost task [^)]*\)(?: \([^)]*\))?: (.*)", text)
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\w*: ", line)]
    first = cause.group(1) if cause else raised[-1] if raised and len(lines) > 1 else lines[0] if lines else text
    first = re.sub(r"\b(?:[a-z]\w*\.)+(?=[A-Z]\w*(?:Exception|Error)\b)", "", first)  # package names
    return first.split(" Consider setting ")[0][:limit]


class BatchFailures:
    """Counts the failures of the same micro-batch in ``s:failing``, written while this
    driver holds the lease.

    :param keeper: the driver's :class:`~argus.supervision.driver.LeaseKeeper`.
    :param after: failures of the same batch in a row before its records are isolated.
    """

    def __init__(self, keeper, after: int):
        if after < 1:
            raise ValueError("poison_after_failures must be at least 1")
        self.keeper, self.after = keeper, after
        self._failing: dict[str, Any] = keeper.store.read(keeper.query).failing or {}

    def attempts(self, batch_id: int) -> int:
        return int(self._failing.get("attempts", 0)) if self._failing.get("batch") == batch_id else 0

    def must_isolate(self, batch_id: int) -> bool:
        return self.attempts(batch_id) >= self.after

    def failed(self, batch_id: int, exc: BaseException) -> dict[str, Any]:
        attempts = self.attempts(batch_id) + 1
        self._failing = {"batch": batch_id, "attempts": attempts, "after": self.after,
                         "error": error_summary(f"{type(exc).__name__}: {exc}"),
                         "first_ms": self._failing.get("first_ms") if attempts > 1 else now_ms(), "ms": now_ms()}
        self.keeper.write({"failing": self._failing})
        return self._failing

    def passed(self, batch_id: int) -> None:
        if self._failing:
            self._failing = {}
            self.keeper.write({"failing": {}})

    def isolated(self, batch_id: int, poison: list[tuple[Key, str]], topic: str) -> dict[str, Any]:
        entry = {"batch": batch_id, "ms": now_ms(), "topic": topic,
                 "records": [{"partition": p, "offset": o, "reason": why} for (p, o), why in poison]}
        before = self.keeper.store.read(self.keeper.query).isolated or {}
        kept = [*before.get("recent", []), entry][-ISOLATED_KEPT:]
        self._failing = {}
        self.keeper.write({"failing": {}, "isolated": {"total": int(before.get("total", 0)) + len(poison),
                                                        "recent": kept}})
        return entry


def describe(entry: dict[str, Any]) -> str:
    """``topic/partition/offset (reason)``, ... of an ``s:isolated`` entry."""
    return "; ".join(f"{entry.get('topic')}/{r['partition']}/{r['offset']} ({r['reason']})"
                     for r in entry.get("records", [])) or "no record failed alone"
