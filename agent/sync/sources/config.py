"""How each source of identities is configured: one frozen model per `type`, a union discriminated on it.

Secrets (tokens, passwords) are `Secret`s: the agent config loader turns `${env:NAME}`/`${file:path}` into them.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from agent.config.values import FromEnv, NonEmpty, SecretValue, Spec
from agent.secrets import HIDDEN, Secret

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 0.5
DEFAULT_MAX_PAGES = 10_000
DEFAULT_PAGE_SIZE = 100
DEFAULT_LDAP_PAGE_SIZE = 500  # at most slapd's default size.pr limit; AD's MaxPageSize is 1000
MAX_PAGE_SIZE = 10_000

SourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="e.g. hr, hr-api, ldap")]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)]
# Dotted keys into a JSON body, e.g. `data.items`; "" is the body itself.
JsonPath = Annotated[str, Field(pattern=r"^([^.]+(\.[^.]+)*)?$")]
# An LDAP attribute description (name or OID, options): it goes into filters as written, so no specials.
AttributeName = Annotated[str, Field(pattern=r"^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$")]
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


# A header value: plain text, or a Secret when written as ${env:...}/${file:...} (an API key). Headers named
# like a credential take a Secret only: a plain value would sit in the file and be echoed in its errors.
HeaderValue = str | Secret
_CREDENTIAL_HEADER = re.compile(r"authorization|cookie|token|secret|key|passw(or)?d|credential", re.IGNORECASE)
CREDENTIAL_HEADER_PROBLEM = "this header carries a credential: write its value as ${env:NAME} or ${file:path}"
UNSENDABLE = "has characters HTTP headers cannot carry (only Latin-1 ones can be sent)"


def sendable_in_header(text: str) -> bool:
    """Whether requests can send `text` in a header (http.client and basic auth encode it as Latin-1)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def header_problem(name: str, value: object) -> str | None:
    """What is wrong with one header as written, in words that never repeat its value; None when nothing."""
    if not _HEADER_NAME.match(name):
        return f"'{name}' is not an HTTP header name"
    if _CREDENTIAL_HEADER.search(name) and not isinstance(value, Secret):
        return CREDENTIAL_HEADER_PROBLEM
    text = value.reveal() if isinstance(value, Secret) else value
    if isinstance(text, str) and not sendable_in_header(text):
        return f"the value {UNSENDABLE}"
    return None


def _errors_at_keys(title: str, problems: Mapping[str, str]) -> ValidationError:
    """One error per key, each at its own key (so a diagnostic points at that header), input not kept."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{problem}", {"problem": problem}), loc=(key,), input=HIDDEN
            )
            for key, problem in problems.items()
        ],
    )


def _check_sendable(value: Secret, what: str) -> Secret:
    if not sendable_in_header(value.reveal()):
        raise ValueError(f"the {what} {UNSENDABLE}")
    return value


def _path_from_env(value: object) -> object:
    return value.reveal() if isinstance(value, Secret) else value


EnvPath = Annotated[Path, BeforeValidator(_path_from_env)]


def _check_http_url(url: str) -> str:
    # Credentials first, and no message repeats the URL: it may hold a password or a key in its query.
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValueError("put credentials under auth:, never in the URL")
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("the URL is not an http(s) URL with a host, e.g. https://hr.example.org/api")
    return url


class BearerAuth(Spec):
    type: Literal["bearer"]
    token: SecretValue

    @field_validator("token")
    @classmethod
    def _sendable(cls, value: Secret) -> Secret:
        return _check_sendable(value, "token")


class BasicAuth(Spec):
    type: Literal["basic"]
    username: FromEnv
    password: SecretValue

    @field_validator("username")
    @classmethod
    def _sendable_username(cls, value: str) -> str:
        if not sendable_in_header(value):
            raise ValueError(f"the username {UNSENDABLE}")
        return value

    @field_validator("password")
    @classmethod
    def _sendable_password(cls, value: Secret) -> Secret:
        return _check_sendable(value, "password")


HttpAuth = Annotated[BearerAuth | BasicAuth, Field(discriminator="type")]


class NoPaging(Spec):
    """The whole list comes in one answer."""

    mode: Literal["none"]


class PagePaging(Spec):
    """`?page=N&per_page=S`. A short page ends the read; with `confirm_end` the next page is asked for once
    more, and if it still holds records the short page lost some (a fixed page grid cannot recover them)."""

    mode: Literal["page"]
    size: PageSize = DEFAULT_PAGE_SIZE
    page_param: NonEmpty = "page"
    size_param: NonEmpty = "per_page"
    first_page: int = Field(default=1, ge=0)
    confirm_end: bool = True


class OffsetPaging(Spec):
    """`?offset=O&limit=L`, advancing by the records actually returned. With `confirm_end` (default) the read
    goes on until an empty page, so a page cut short loses nothing; without it a short page ends the read."""

    mode: Literal["offset"]
    size: PageSize = DEFAULT_PAGE_SIZE
    offset_param: NonEmpty = "offset"
    limit_param: NonEmpty = "limit"
    confirm_end: bool = True


class CursorPaging(Spec):
    """`?cursor=C`, with the next cursor at `next_cursor_path` in each body; none (or "") ends the read."""

    mode: Literal["cursor"]
    next_cursor_path: JsonPath = Field(min_length=1)
    cursor_param: NonEmpty = "cursor"
    size: PageSize | None = None
    size_param: NonEmpty = "limit"


class NextLinkPaging(Spec):
    """The next page's URL at `next_link_path` in the body, or (when not set) in the `Link: rel=next` header.
    A link to another server is never followed (it would receive the credentials)."""

    mode: Literal["next-link"]
    next_link_path: JsonPath | None = Field(default=None, min_length=1)
    size: PageSize | None = None
    size_param: NonEmpty = "limit"


Paging = Annotated[NoPaging | PagePaging | OffsetPaging | CursorPaging | NextLinkPaging, Field(discriminator="mode")]


class HttpSourceOptions(Spec):
    """Settings every HTTP source shares: TLS, timeouts, bounded retries, a page cap."""

    tls_verify: bool = Field(default=True, description="false only for a test server; prefer ca_file")
    ca_file: EnvPath | None = None
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=1, le=10, description="per request, the first one included"
    )
    backoff_seconds: float = Field(default=DEFAULT_BACKOFF_SECONDS, ge=0)
    max_pages: int = Field(
        default=DEFAULT_MAX_PAGES, ge=1, description="a read stops as incomplete beyond this many pages"
    )
    auth: HttpAuth | None = None
    headers: dict[str, HeaderValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _verify_and_ca(self) -> HttpSourceOptions:
        if self.ca_file is not None and not self.tls_verify:
            raise ValueError("ca_file is set but tls_verify is false: remove one of them")
        return self

    @field_validator("headers", mode="before")
    @classmethod
    def _header_values(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value  # the type check says what is wrong
        problems = {str(name): problem for name, item in value.items() if (problem := header_problem(str(name), item))}
        if problems:
            raise _errors_at_keys(cls.__name__, problems)
        return value

    @property
    def verify(self) -> bool | str:
        """requests' `verify`: a CA bundle path, or True/False."""
        return str(self.ca_file) if self.ca_file is not None else self.tls_verify


class CsvSourceConfig(Spec):
    """An HR export. `columns` renames headers to field names (other headers keep their name); the id column
    (`id_field`, after renaming), every renamed header and `required_fields` must be in the header row."""

    type: Literal["csv"]
    name: SourceName
    path: EnvPath
    encoding: NonEmpty = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote_char: str = Field(default='"', min_length=1, max_length=1)
    columns: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)
    id_field: NonEmpty = "id"
    required_fields: tuple[NonEmpty, ...] = ()

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding '{value}'") from None
        return value

    @field_validator("columns")
    @classmethod
    def _distinct_targets(cls, value: dict[str, str]) -> dict[str, str]:
        targets = list(value.values())
        twice = sorted({target for target in targets if targets.count(target) > 1})
        if twice:
            raise ValueError(f"two columns are renamed to '{twice[0]}'")
        return value

    @model_validator(mode="after")
    def _delimiter_is_not_quote(self) -> CsvSourceConfig:
        if self.delimiter == self.quote_char:
            raise ValueError("delimiter and quote_char must differ")
        return self


class HttpJsonSourceConfig(HttpSourceOptions):
    """An HR system's REST endpoint. `lookup_url` (with `{id}`) answers one record: 404 means gone; without it
    the first lookup after a read reads everything again and the lookups until the next read search that
    re-read by `id_field`."""

    type: Literal["http-json"]
    name: SourceName
    url: FromEnv
    params: dict[NonEmpty, str] = Field(default_factory=dict, description="extra query parameters on every page")
    records_path: JsonPath = ""
    paging: Paging = Field(default_factory=lambda: NoPaging(mode="none"))
    expected_total_path: JsonPath | None = Field(default=None, min_length=1)
    lookup_url: FromEnv | None = None
    lookup_record_path: JsonPath = ""
    id_field: NonEmpty = "id"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("lookup_url")
    @classmethod
    def _lookup_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "{id}" not in value:
            raise ValueError("lookup_url must contain {id}, e.g. https://hr.example.org/api/people/{id}")
        _check_http_url(value.replace("{id}", "x"))
        return value


class ScimSourceConfig(HttpSourceOptions):
    """A SCIM 2.0 service provider; `base_url` ends before `/Users` (e.g. https://hr.example.org/scim/v2)."""

    type: Literal["scim"]
    name: SourceName
    base_url: FromEnv
    filter: str | None = Field(default=None, min_length=1, description='e.g. active eq true, or userType eq "Employee"')
    page_size: PageSize = DEFAULT_PAGE_SIZE
    lookup_by: Literal["id", "externalId"] = "id"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/")


class LdapGroupsSpec(Spec):
    """Group membership as the multi-valued field `groups` (group names): an entry's `memberOf` when it has
    one (the name is the value of the first RDN of each DN), else the groups under `base_dn` that list its DN."""

    base_dn: FromEnv | None = None
    object_class: AttributeName = "groupOfNames"
    member_attribute: AttributeName = "member"
    name_attribute: AttributeName = "cn"
    use_member_of: bool = True
    member_of_attribute: AttributeName = Field(default="memberOf", description="isMemberOf on Oracle/389 directories")

    @model_validator(mode="after")
    def _some_way(self) -> LdapGroupsSpec:
        if self.base_dn is None and not self.use_member_of:
            raise ValueError("groups: set base_dn, or use_member_of: true, or leave groups out")
        return self


LdapTls = Literal["ldaps", "start-tls", "none"]


class LdapSourceConfig(Spec):
    """A directory read by paged search. TLS follows the URL (ldaps:// is LDAPS, ldap:// is StartTLS) and
    always verifies the certificate; plain text needs `tls: none`, written out. `lookup_base_dn` widens the
    exact lookup beyond `base_dn`, so a user moved out of the listing is not taken for a leaver."""

    type: Literal["ldap"]
    name: SourceName
    url: FromEnv
    bind_dn: FromEnv
    bind_password: SecretValue
    base_dn: FromEnv
    scope: Literal["one", "subtree"] = "subtree"
    filter: str = Field("(objectClass=inetOrgPerson)", pattern=r"^\(.*\)$")
    attributes: tuple[AttributeName, ...] = (
        "uid",
        "cn",
        "givenName",
        "sn",
        "mail",
        "title",
        "departmentNumber",
        "employeeNumber",
        "employeeType",
    )
    id_attribute: AttributeName = "entryUUID"
    groups: LdapGroupsSpec | None = None
    paged_size: int = Field(default=DEFAULT_LDAP_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    tls: LdapTls | None = None
    ca_file: EnvPath | None = None
    connect_timeout_seconds: int = Field(default=10, ge=1)
    receive_timeout_seconds: int = Field(default=30, ge=1)
    referrals: Literal["incomplete", "ignore"] = Field(
        default="incomplete", description="a search that refers part of the tree elsewhere: incomplete, or ignore them"
    )
    lookup_base_dn: FromEnv | None = None

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"ldap", "ldaps"} or not parts.hostname:
            # Not repeated: a URL written with user:password@ would show the password.
            raise ValueError("the URL is not an ldap:// or ldaps:// URL with a host, e.g. ldaps://dir.example.org")
        return value

    @model_validator(mode="after")
    def _tls_matches_url(self) -> LdapSourceConfig:
        scheme = urlsplit(self.url).scheme
        if scheme == "ldaps" and self.tls not in {None, "ldaps"}:
            raise ValueError(f"an ldaps:// URL uses LDAPS; tls: {self.tls} contradicts it")
        if scheme == "ldap" and self.tls == "ldaps":
            raise ValueError("tls: ldaps needs an ldaps:// URL")
        if self.tls == "none" and self.ca_file is not None:
            raise ValueError("ca_file is set but tls is none: remove one of them")
        return self

    @property
    def tls_mode(self) -> LdapTls:
        """The TLS in effect: as written, else what the URL scheme implies (never plain text by default)."""
        if self.tls is not None:
            return self.tls
        return "ldaps" if urlsplit(self.url).scheme == "ldaps" else "start-tls"


SourceConfig = Annotated[
    CsvSourceConfig | HttpJsonSourceConfig | ScimSourceConfig | LdapSourceConfig, Field(discriminator="type")
]
_SOURCE_CONFIG: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


def parse_source_config(data: object) -> SourceConfig:
    """One source's config from loaded YAML (secrets already `Secret`s); raises pydantic's ValidationError."""
    return _SOURCE_CONFIG.validate_python(data)
