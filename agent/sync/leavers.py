"""Confirming leavers: a person is gone only when every source that creates users says so for that exact id."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from agent.errors import SourceUnavailable
from agent.sync.mapper_spec import MapperSpec
from agent.sync.model import BatchLookup, Found, NotFound, Source

Answer = TypeVar("Answer")


class LeaverLookup:
    """`lookup(id)` asks each source that creates users, in the mapper's order, until one finds the id.

    A source that could not answer one lookup is not asked again in this run: the remaining leavers are left
    enabled at once (as they would be after its timeout), instead of waiting out one timeout each while the
    source is down. `prefetch(ids)` asks sources that can answer many ids at once (LDAP: one search per few
    dozen ids instead of one per leaver) before the leavers are handled; the answers it settles are then given
    from memory, and every id it could not settle is asked alone, as without it. Safe from several threads
    once `prefetch` has returned; `start_prefetch` runs it on a thread of its own, and lookups wait for it."""

    def __init__(self, sources: Mapping[str, Source], mapper: MapperSpec) -> None:
        self._creating = [sources[name] for name in mapper.sources if name in sources and mapper.creates_users(name)]
        self._unavailable: dict[str, SourceUnavailable] = {}  # source name -> its first failure in this run
        self._answers: dict[str, Found | NotFound] = {}
        self._lock = threading.Lock()
        self._prefetching: threading.Thread | None = None
        self._prefetch_error: Exception | None = None

    def __call__(self, external_id: str) -> Found | NotFound:
        self.join_prefetch()
        if self._prefetch_error is not None:
            # Not a source being down (recorded as in a lookup): something unforeseen, which stops the run.
            raise self._prefetch_error
        known = self._answers.get(external_id)
        if known is not None:
            return known
        for source in self._creating:
            answer = self._ask(source, functools.partial(source.lookup, external_id))
            if isinstance(answer, Found):
                return answer
        return NotFound()

    def prefetch(self, external_ids: Sequence[str]) -> None:
        """Settle what can be settled of `external_ids` with one batch per source, in the same order of sources.
        It stops at the first source that cannot answer in batches, or cannot answer at all (then recorded, as
        by a single lookup): the ids still open are left to single lookups."""
        pending = list(dict.fromkeys(external_ids))
        for source in self._creating:
            if not pending:
                return
            if not isinstance(source, BatchLookup) or source.name in self._unavailable:
                return
            try:
                answers = self._ask(source, functools.partial(source.lookup_many, pending))
            except SourceUnavailable:
                return
            self._answers.update({found: answers[found] for found in pending if isinstance(answers.get(found), Found)})
            # Not found here: the next source must say so too. Unsettled: asked alone later, every source again.
            pending = [wanted for wanted in pending if isinstance(answers.get(wanted), NotFound)]
        self._answers.update(dict.fromkeys(pending, NotFound()))

    def start_prefetch(self, external_ids: Sequence[str]) -> None:
        """`prefetch` on a thread of its own, so that the first writes (joiners' imports, movers' changes) go
        out meanwhile; a lookup waits for it. Nothing to settle: no thread."""
        if not external_ids:
            return
        self._prefetching = threading.Thread(
            target=self._prefetch_on_thread, args=(list(external_ids),), name="leaver-prefetch", daemon=True
        )
        self._prefetching.start()

    def join_prefetch(self) -> None:
        """Return once a started prefetch has ended."""
        if self._prefetching is not None:
            self._prefetching.join()

    def _prefetch_on_thread(self, external_ids: list[str]) -> None:
        try:
            self.prefetch(external_ids)
        except Exception as error:  # noqa: BLE001 - raised by the lookups, on the threads that ask
            self._prefetch_error = error

    def _ask(self, source: Source, question: Callable[[], Answer]) -> Answer:
        with self._lock:
            failed = self._unavailable.get(source.name)
        if failed is not None:
            raise SourceUnavailable(f"{failed} (not asked again in this run)")
        try:
            return question()
        except SourceUnavailable as error:
            with self._lock:
                self._unavailable.setdefault(source.name, error)
            raise
