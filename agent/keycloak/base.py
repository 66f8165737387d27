"""The plumbing every group of gateway calls shares: the transport, paging, role-mapping writes and creates
that never replay a POST blindly. `KeycloakGateway` (agent/keycloak/gateway.py) combines the groups."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from agent.errors import AuthError, Conflict, OutcomeUnknown, Rejected, Unavailable
from agent.keycloak.auth import TokenSource
from agent.keycloak.models import (
    Group,
    Role,
)
from agent.keycloak.transport import RequestStats, Response, Transport, admin_path, realm_path

PAGE_SIZE = 500
# Users per page of the idp-agent plugin's user listing: its largest page (AccessResource.MAX_PAGE), a few MB.
PLUGIN_PAGE_SIZE = 5000
# Ranges of the plugin's user listing read at once: Keycloak builds one while the agent decodes another. Measured
# on a 2-CPU machine, 100k users, medians of three: 5.15 s one at a time, 4.07 s two at once, 4.29 s four at once
# (beside a CPU-bound Python thread, as in a sync: 9.34, 6.68 and 6.84 s).
PLUGIN_READ_WORKERS = 2

Item = TypeVar("Item")
Result = TypeVar("Result")


def in_order_concurrently(
    work: Callable[[Item], Result], items: Iterable[Item], workers: int, *, name: str
) -> Iterator[Result]:
    """work(item) for each item, up to `workers` at once, the results given in the order of the items; no more
    than `workers` results are held ahead of the one given (memory stays bounded however many items there are).
    A failure is raised when its turn comes; what is in flight then is finished, nothing more is started."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        pending: deque[Future[Result]] = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class GatewayBase:
    """Every call takes the realm explicitly; a read-only gateway refuses all writes."""

    def __init__(self, transport: Transport, *, read_only: bool = False) -> None:
        self._transport = transport
        self.is_read_only = read_only

    @property
    def stats(self) -> RequestStats:
        return self._transport.stats

    @property
    def tokens(self) -> TokenSource:
        return self._transport.tokens

    @property
    def server_url(self) -> str:
        return self._transport.connection.url

    def close(self) -> None:
        self._transport.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self._transport.request("GET", path, params=params)
        return response.body if response else None

    def _lookup(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self._transport.request("GET", path, params=params, missing_ok=True)
        return None if response is None else response.body

    def _plugin_lookup(self, realm: str, *parts: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET an endpoint of the idp-agent plugin (`plugins/keycloak`) under /realms/{realm}/idp-agent/. None when
        it is not installed (404), the realm has user federation (409) or the account may not use it (401/403):
        the caller then reads the same through the admin API."""
        try:
            return self._lookup(realm_path(realm, "idp-agent", *parts), params)
        except (AuthError, Conflict):
            return None

    def plugin_raw_users(
        self, realm: str, *, page_size: int = PLUGIN_PAGE_SIZE, workers: int = PLUGIN_READ_WORKERS
    ) -> Iterator[Mapping[str, Any]] | None:
        """Every user (service accounts aside, as in the listing) from the idp-agent plugin: the full
        representation's profile fields, attributes and required actions, and the types of the stored
        credentials, in order of user id. The plugin says where each run of `page_size` users ends
        (`users-by-id/bounds`); those ranges are then read `workers` at once, so Keycloak builds one while the agent
        decodes another. Ids never change, so the ranges are disjoint and a user renamed meanwhile is read once, with
        its attributes. The first page comes with the bounds: a realm of one page takes one request, not two.
        None where the plugin does not answer (see `_plugin_lookup`; a pack that pages by username has no such
        path), so the caller reads the admin API."""
        first, bounds = self._first_page_and_bounds(realm, page_size)
        if first is None or bounds is None:
            return None
        if not bounds and len(first) < page_size:
            return iter(first)  # the realm is one page
        if bounds and first and first[-1]["id"] == bounds[0]:
            rest = list(zip(bounds, [*bounds[1:], None], strict=True))
            return self._plugin_user_ranges(realm, rest, page_size, workers, read_already=first)
        # Users came or went between the two reads: the ranges as the bounds give them, the first one again.
        ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
        return self._plugin_user_ranges(realm, ranges, page_size, workers)

    def _first_page_and_bounds(
        self, realm: str, page_size: int
    ) -> tuple[list[Mapping[str, Any]] | None, list[str] | None]:
        answer = self._plugin_first_page(realm, page_size)
        if answer is None:
            return None, None
        first, bounds = answer
        return first, bounds if bounds is not None else self._plugin_user_bounds(realm, page_size)

    def _plugin_first_page(self, realm: str, page_size: int) -> tuple[list[Mapping[str, Any]], list[str] | None] | None:
        """The first page with the bounds, in one request (a pack from before the bounds came with it gives them
        as None: ask for them apart); None where the plugin does not answer."""
        raw = self._plugin_lookup(realm, "access", "users-by-id", params={"max": page_size, "bounds": page_size})
        if raw is None:
            return None
        bounds = raw.get("bounds")
        return list(raw.get("users") or ()), None if bounds is None else [str(bound) for bound in bounds]

    def _plugin_user_bounds(self, realm: str, every: int) -> list[str] | None:
        raw = self._plugin_lookup(realm, "access", "users-by-id", "bounds", params={"every": every})
        return None if raw is None else [str(bound) for bound in raw.get("bounds") or ()]

    def _plugin_users_page(
        self, realm: str, after: str | None, until: str | None, page_size: int
    ) -> list[Mapping[str, Any]] | None:
        """Up to `page_size` users with an id in (after, until]; no `after`: from the first, no `until`: to the
        last."""
        params: dict[str, Any] = {"max": page_size}
        if after is not None:
            params["after"] = after
        if until is not None:
            params["until"] = until
        raw = self._plugin_lookup(realm, "access", "users-by-id", params=params)
        return None if raw is None else list(raw.get("users") or ())

    def _plugin_user_range(
        self, realm: str, after: str | None, until: str | None, page_size: int
    ) -> list[Mapping[str, Any]]:
        """Every user in (after, until]: one page, or more while they come back full without reaching `until`
        (users added since the bounds were read)."""
        users: list[Mapping[str, Any]] = []
        while True:
            page = self._plugin_users_page(realm, after, until, page_size)
            if page is None:
                # Half a listing must never pass for all of it.
                raise Unavailable(f"the idp-agent plugin stopped answering while realm '{realm}' was read")
            users.extend(page)
            if len(page) < page_size or page[-1]["id"] == until:
                return users
            after = str(page[-1]["id"])

    def _plugin_user_ranges(
        self,
        realm: str,
        ranges: Sequence[tuple[str | None, str | None]],
        page_size: int,
        workers: int,
        *,
        read_already: list[Mapping[str, Any]] | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """The users of each range in order; `read_already`, the users before the first range, come first, and
        the ranges are read while they are given."""
        reads: list[Callable[[], list[Mapping[str, Any]]]] = [] if read_already is None else [lambda: read_already]
        reads += [partial(self._plugin_user_range, realm, after, until, page_size) for after, until in ranges]
        for users in in_order_concurrently(lambda read: read(), reads, workers, name="plugin-reads"):
            yield from users

    def _write(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Response:
        response = self._transport.request(method, path, params=params, body=body, read_only=self.is_read_only)
        assert response is not None  # missing_ok is off, so a 404 raised
        return response

    def _map_roles(self, method: str, path: str, roles: list[Role]) -> None:
        """Add (POST) or remove (DELETE) role mappings; nothing is sent for an empty list."""
        if roles:
            self._write(method, path, [{"id": role.id, "name": role.name} for role in roles])

    def _paged(self, path: str, params: Mapping[str, Any] | None = None, page_size: int = PAGE_SIZE) -> Iterator[Any]:
        """Every item of a list endpoint, fetched `page_size` at a time until a short page."""
        first = 0
        while True:
            page = self._get(path, {**(params or {}), "first": first, "max": page_size}) or []
            yield from page
            if len(page) < page_size:
                return
            first += page_size

    def _page_groups(self, realm: str) -> list[Group]:
        """The group tree read page by page, parents before children (for accounts that may not export)."""
        groups: list[Group] = []
        top = admin_path(realm, "groups")
        pending = [Group.from_json(raw) for raw in self._paged(top, {"briefRepresentation": "false"})]
        while pending:
            group = pending.pop(0)
            groups.append(group)
            if group.sub_group_count:
                children = admin_path(realm, "groups", group.id, "children")
                pending.extend(Group.from_json(raw) for raw in self._paged(children, {"briefRepresentation": "false"}))
        return groups

    def _paged_concurrently(
        self, path: str, params: Mapping[str, Any], page_size: int, *, expected: int, workers: int
    ) -> Iterator[Any]:
        """Every item of a list endpoint whose length is about `expected`, up to `workers` pages in flight,
        yielded in page order: the pages the count predicts, then one at a time while the last comes back
        full (items added since the count). An item whose `id` was already yielded (the listing shifted
        while it was read) is given once."""
        seen: set[str] = set()

        def fetch(first: int) -> list[Any]:
            return list(self._get(path, {**params, "first": first, "max": page_size}) or [])

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pages") as pool:
            pending: deque[tuple[int, Future[list[Any]]]] = deque()
            starts = iter(range(0, expected + 1, page_size))
            while True:
                for start in starts:
                    pending.append((start, pool.submit(fetch, start)))
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    return
                start, future = pending.popleft()
                page = future.result()
                if not pending and len(page) == page_size:
                    starts = iter((start + page_size,))  # longer than counted: read on, one page at a time
                for item in page:
                    key = str(item.get("id", "")) if isinstance(item, Mapping) else ""
                    if key in seen:
                        continue
                    if key:
                        seen.add(key)
                    yield item

    def _export(self, realm: str, *, clients: bool, groups_and_roles: bool) -> dict[str, Any]:
        params = {"exportClients": str(clients).lower(), "exportGroupsAndRoles": str(groups_and_roles).lower()}
        path = admin_path(realm, "partial-export")
        response = self._transport.request("POST", path, params=params, reads_only=True)
        assert response is not None
        return dict(response.body or {})

    def _create(self, path: str, body: Any, find_existing: Callable[[], str | None]) -> str:
        """POST a new object and return its id; if the answer is lost, adopt what the lookup finds.

        A POST is never replayed blindly: after a lost answer the object is looked up by its natural
        key, and only when it is certainly absent is the POST sent once more. A 409 to the first POST
        stays a Conflict: the object was there before, not made by this call.
        """
        try:
            response = self._write("POST", path, body)
        except OutcomeUnknown:
            return self._create_after_lost_answer(path, body, find_existing)
        return _created_id(path, response, find_existing)

    def _create_after_lost_answer(self, path: str, body: Any, find_existing: Callable[[], str | None]) -> str:
        """Adopt what the lookup finds, else POST once more."""
        existing = find_existing()
        if existing is not None:
            return existing
        try:
            response = self._write("POST", path, body)
        except (Conflict, OutcomeUnknown):
            # The first POST committed after the lookup (409), or this one's answer is lost too: what the
            # lookup finds now is the one object both POSTs made.
            existing = find_existing()
            if existing is None:
                raise
            return existing
        return _created_id(path, response, find_existing)


def _created_id(path: str, response: Response, find_existing: Callable[[], str | None]) -> str:
    """The new object's id from the Location header, else from the lookup."""
    created = response.created_id or find_existing()
    if created is None:
        raise Rejected(f"POST {path} succeeded but the new object cannot be found")
    return created


def flatten_groups(raw_groups: Any, parent_id: str | None) -> Iterator[Group]:
    """Groups of an export tree (`subGroups` nested) as a flat list, parents before children."""
    for raw in raw_groups:
        children = list(raw.get("subGroups") or ())
        yield Group.from_json({**raw, "parentId": parent_id, "subGroupCount": len(children)})
    for raw in raw_groups:
        yield from flatten_groups(raw.get("subGroups") or (), parent_id=str(raw["id"]))
