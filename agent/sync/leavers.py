"""Confirming leavers: a person is gone only when every source that creates users says so for that exact id."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from agent.errors import SourceUnavailable
from agent.sync.mapper_spec import MapperSpec
from agent.sync.mapping import listed_ids, record_says_left
from agent.sync.model import BatchLookup, Found, Left, NotFound, Source, SourceRead

Answer = TypeVar("Answer")
# Ids a source's lookup is proven on: one deleted from the source since the listing does not fail the proof.
CONTROLS = 3


class LeaverLookup:
    """`lookup(id)` asks each source that creates users, in the mapper's order, until one finds the id.

    A source that could not answer one lookup is not asked again in this run: the remaining leavers are left
    enabled at once (as they would be after its timeout), instead of waiting out one timeout each while the
    source is down. `prefetch(ids)` asks sources that can answer many ids at once (LDAP: one search per few
    dozen ids instead of one per leaver) before the leavers are handled; the answers it settles are then given
    from memory, and every id it could not settle is asked alone, as without it. Safe from several threads
    once `prefetch` has returned; `start_prefetch` runs it on a thread of its own, and lookups wait for it."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        mapper: MapperSpec,
        controls: Mapping[str, Sequence[str]] | None = None,
        *,
        now: datetime | None = None,
    ) -> None:
        """`controls`: per source, ids its listing returned this run (see `listed_ids`). Before a source
        confirms anyone gone, its lookup must find one of them: a lookup that searches another field than the
        listing (an id_attribute, lookup_by or id transform that does not match the mapper's id) or another
        place (a wrong lookup_url answering 404) finds no one, and would confirm every candidate gone.
        `now`: a record found is read as of then, and answered `Left` when it says its person left (None: a
        record found is `Found`)."""
        self._creating = [sources[name] for name in mapper.sources if name in sources and mapper.creates_users(name)]
        self._mapper = mapper
        self._now = now
        self._controls = controls or {}
        self._proven: set[str] = set()
        self._proving = threading.Lock()
        self._unavailable: dict[str, SourceUnavailable] = {}  # source name -> its first failure in this run
        self._answers: dict[str, Found | NotFound] = {}
        self._lock = threading.Lock()
        self._prefetching: threading.Thread | None = None
        self._prefetch_error: Exception | None = None

    def __call__(self, external_id: str) -> Found | NotFound | Left:
        answer = self._find(external_id)
        if isinstance(answer, Found) and self._now is not None:
            reason = record_says_left(answer.record, answer.record.source, self._mapper, self._now)
            if reason is not None:
                return Left(answer.record, reason)
        return answer

    def _find(self, external_id: str) -> Found | NotFound:
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
            self._prove(source)
            return question()
        except SourceUnavailable as error:
            with self._lock:
                self._unavailable.setdefault(source.name, error)
            raise

    def _prove(self, source: Source) -> None:
        """Once per run and source: its lookup finds an id its listing returned, or SourceUnavailable."""
        with self._proving:
            if source.name in self._proven:
                return
            controls = self._controls.get(source.name, ())
            if controls and not any(isinstance(source.lookup(wanted), Found) for wanted in controls):
                raise SourceUnavailable(
                    f"source '{source.name}': its exact lookup found none of {len(controls)} id(s) its listing "
                    "returned in this run, so it cannot tell who is gone (check that the lookup searches the field "
                    "the mapper's id comes from: id_field, id_attribute, lookup_by, lookup_url)"
                )
            self._proven.add(source.name)


def listed_controls(reads: Mapping[str, SourceRead], mapper: MapperSpec) -> dict[str, tuple[str, ...]]:
    """Per source that creates users, a few ids its complete read listed: what its lookup is proven on."""
    return {
        name: listed_ids(read, mapper, CONTROLS)
        for name, read in reads.items()
        if read.complete and mapper.creates_users(name)
    }
