"""The `scim` source: SCIM 2.0 `/Users` read with startIndex/count until totalResults (RFC 7644 section 3.4.2.4).

A SCIM user becomes flat fields: id, externalId, userName, name.givenName, name.familyName, email (the
primary one), emails, active, title, ..., and from the enterprise extension employeeNumber, department,
manager (its value). Multi-valued attributes are tuples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from agent.errors import SourceUnavailable
from agent.sync.model import FieldValue, Found, NotFound, SourceRead, SourceRecord
from agent.sync.record_mapping import shown
from agent.sync.sources.common import check_external_id, check_path_id
from agent.sync.sources.config import ScimSourceConfig
from agent.sync.sources.http_client import NOT_FOUND, FetchFailed, JsonClient, safe_url

ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SINGLE_VALUED = (
    "id",
    "externalId",
    "userName",
    "displayName",
    "nickName",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
)
NAME_PARTS = ("givenName", "familyName", "middleName", "formatted", "honorificPrefix", "honorificSuffix")
ENTERPRISE_FIELDS = ("employeeNumber", "costCenter", "organization", "division", "department")


class ScimSource:
    def __init__(self, config: ScimSourceConfig) -> None:
        self.config = config
        self.name = config.name

    def read(self) -> SourceRead:
        """Every user; a page that fails, or fewer users than totalResults, makes the read incomplete."""
        with JsonClient(self.config) as client:
            return read_users(self.config, client)

    def lookup(self, external_id: str) -> Found | NotFound:
        """`GET /Users/{id}` (404 is NotFound), or with `lookup_by: externalId` a filter on that exact value."""
        check_external_id(external_id)
        with JsonClient(self.config) as client:
            try:
                if self.config.lookup_by == "id":
                    return _lookup_by_id(self.config, client, external_id)
                return _lookup_by_external_id(self.config, client, external_id)
            except FetchFailed as failed:
                raise SourceUnavailable(f"source {self.name}: lookup failed: {failed}") from None


def read_users(config: ScimSourceConfig, client: JsonClient) -> SourceRead:
    records: list[SourceRecord] = []
    first_page_of: dict[str, int] = {}
    total: int | None = None
    start = 1
    pages = 0

    def incomplete(problem: str) -> SourceRead:
        return SourceRead(config.name, tuple(records), complete=False, problem=problem, pages=pages)

    while total is None or len(records) < total:
        if pages >= config.max_pages:
            return incomplete(f"more than {config.max_pages} pages (max_pages): stopped")
        number = pages + 1
        params = [("startIndex", str(start)), ("count", str(config.page_size))]
        if config.filter:
            params.append(("filter", config.filter))
        try:
            answer = client.get(f"{config.base_url}/Users", params)
        except FetchFailed as failed:
            return incomplete(f"page {number} (startIndex {start}): {failed}")
        pages += 1
        page_total, resources, problem = list_response(answer.body)
        if problem:
            return incomplete(f"page {number} (startIndex {start}): {problem}")
        # A page that moved or repeated is left out: its users would be read twice or out of place.
        problem = (
            start_index_problem(answer.body, start)
            or total_change(total, page_total)
            or repeated_user(resources, first_page_of)
        )
        if problem:
            return incomplete(f"page {number} (startIndex {start}): {problem}")
        total = page_total
        if not resources and len(records) < total:
            return incomplete(
                f"page {number} (startIndex {start}) came back empty with {len(records)} of {total} users read"
            )
        for index, resource in enumerate(resources, start=1):
            records.append(SourceRecord(config.name, flatten_user(resource), f"page {number} #{index}"))
            if isinstance(resource.get("id"), str):
                first_page_of.setdefault(resource["id"], number)
        # Advance by what came back: a server may return fewer than `count` (RFC 7644 3.4.2.4), losing nothing.
        start += len(resources)
    return SourceRead(config.name, tuple(records), complete=True, pages=pages)


def start_index_problem(body: Mapping[str, Any], asked: int) -> str:
    """Why the answer is not the page asked for: its startIndex, when given, is another one ("" when it agrees)."""
    answered = body.get("startIndex")
    if answered is None or str(answered) == str(asked):  # some servers write numbers as strings
        return ""
    shown_index = answered if isinstance(answered, int) else shown(str(answered))
    return f"the answer starts at startIndex {shown_index}: the server ignored the paging"


def total_change(first: int | None, stated: int) -> str:
    """Why a page's totalResults makes the read untrustworthy: it differs from page 1's ("" when equal)."""
    if first is None or stated == first:
        return ""
    return f"totalResults changed from {first} to {stated} while reading: users moved between pages"


def repeated_user(resources: list[Mapping[str, Any]], first_page_of: Mapping[str, int]) -> str:
    """Why a page repeats a user id read on an earlier page, or "". A repeat within one page is the mapping's
    to reject: it is the data's problem, not the paging's."""
    for resource in resources:
        user_id = resource.get("id")
        if isinstance(user_id, str) and user_id in first_page_of:
            return (
                f"repeats user id {shown(user_id)} of page {first_page_of[user_id]}: "
                "the server ignored the paging or the users moved"
            )
    return ""


def list_response(body: Any) -> tuple[int, list[Mapping[str, Any]], str]:
    """totalResults and the Resources of a ListResponse, or a problem."""
    if not isinstance(body, Mapping):
        return 0, [], "the answer is not a SCIM ListResponse"
    total = body.get("totalResults")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        return 0, [], "the answer has no totalResults"
    resources = body.get("Resources", [])  # may be left out when there are none
    if not isinstance(resources, list) or not all(isinstance(item, Mapping) for item in resources):
        return 0, [], "Resources is not a list of objects"
    return total, resources, ""


def flatten_user(user: Mapping[str, Any]) -> dict[str, FieldValue]:
    """The fields of one SCIM user (see the module docstring); absent or null attributes are left out."""
    fields: dict[str, FieldValue] = {}
    for key in SINGLE_VALUED:
        _put(fields, key, user.get(key))
    name = user.get("name")
    if isinstance(name, Mapping):
        for part in NAME_PARTS:
            _put(fields, f"name.{part}", name.get(part))
    if isinstance(user.get("active"), bool):
        fields["active"] = "true" if user["active"] else "false"
    emails = _multi_values(user.get("emails"))
    if emails:
        fields["emails"] = tuple(value for value, _ in emails)
        fields["email"] = next((value for value, primary in emails if primary), emails[0][0])
    for key in ("phoneNumbers", "roles", "entitlements"):
        values = _multi_values(user.get(key))
        if values:
            fields[key] = tuple(value for value, _ in values)
    groups = user.get("groups")
    if isinstance(groups, list):
        names = [group.get("display") or group.get("value") for group in groups if isinstance(group, Mapping)]
        fields["groups"] = tuple(str(name) for name in names if name)
    enterprise = user.get(ENTERPRISE_SCHEMA)
    if isinstance(enterprise, Mapping):
        for key in ENTERPRISE_FIELDS:
            _put(fields, key, enterprise.get(key))
        manager = enterprise.get("manager")
        if isinstance(manager, Mapping):
            _put(fields, "manager", manager.get("value"))
    return fields


def _put(fields: dict[str, FieldValue], key: str, value: Any) -> None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        fields[key] = str(value)


def _multi_values(items: Any) -> list[tuple[str, bool]]:
    """(value, primary) of a multi-valued attribute such as emails: [{value, type, primary}]."""
    if not isinstance(items, list):
        return []
    return [
        (str(item["value"]), item.get("primary") is True)
        for item in items
        if isinstance(item, Mapping) and isinstance(item.get("value"), str) and item["value"]
    ]


def scim_string(value: str) -> str:
    """A SCIM filter comparison value: a JSON string, so quotes, backslashes and controls are escaped."""
    return json.dumps(value, ensure_ascii=False)


def _lookup_by_id(config: ScimSourceConfig, client: JsonClient, external_id: str) -> Found | NotFound:
    check_path_id(config.name, external_id)
    url = f"{config.base_url}/Users/{quote(external_id, safe='')}"
    answer = client.get(url, not_found_ok=True)
    if answer.status == NOT_FOUND:
        if not _scim_error(answer.body):
            # A proxy's or gateway's page (a route missing during a redeploy) says nothing of the user.
            raise SourceUnavailable(
                f"source {config.name}: GET {safe_url(url)} answered 404 without a SCIM error; not taken as "
                "'no such user'"
            )
        return NotFound()
    if not isinstance(answer.body, Mapping) or answer.body.get("id") != external_id:
        raise SourceUnavailable(f"source {config.name}: GET {safe_url(url)} did not answer the user asked for")
    return Found(SourceRecord(config.name, flatten_user(answer.body), f"GET {safe_url(url)}"))


def _scim_error(body: object) -> bool:
    """Whether a body is a SCIM error (RFC 7644 3.12: every error of a service provider is one)."""
    if not isinstance(body, Mapping):
        return False
    schemas = body.get("schemas")
    return (isinstance(schemas, list) and SCIM_ERROR in schemas) or str(body.get("status")) == str(NOT_FOUND)


def _lookup_by_external_id(config: ScimSourceConfig, client: JsonClient, external_id: str) -> Found | NotFound:
    url = f"{config.base_url}/Users"
    answer = client.get(url, [("filter", f"externalId eq {scim_string(external_id)}")])
    total, resources, problem = list_response(answer.body)
    if problem:
        raise SourceUnavailable(f"source {config.name}: lookup: {problem}")
    if total == 0 and not resources:
        return NotFound()
    exact = [resource for resource in resources if resource.get("externalId") == external_id]
    if not exact:
        raise SourceUnavailable(f"source {config.name}: the filter on externalId answered other users only")
    return Found(SourceRecord(config.name, flatten_user(exact[0]), f"GET {safe_url(url)} externalId"))
