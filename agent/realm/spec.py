"""Desired realm state as written in realm-config/: frozen pydantic models with friendly keys.

A field left out (None) is not managed: the live value stays as it is. Lists are authoritative only over
objects the agent owns (see `ManagedSpec`). Anything else goes under `keycloak:` in Keycloak's own form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from agent.config.values import Duration, FromEnv, GroupPath, NonEmpty, SecretValue, Spec
from agent.realm.password_policy import PasswordPolicySpec
from agent.realm.written_maps import no_bookkeeping_in, no_secrets_in

ManageMode = Literal["owned", "full", "no-delete"]


class ManagedSpec(Spec):
    """Per kind: `owned` (default) deletes only what the agent created, `full` deletes anything not written
    (never built-ins or the agent's own clients), `no-delete` never deletes."""

    realm_roles: ManageMode = "owned"
    client_roles: ManageMode = "owned"
    groups: ManageMode = "owned"
    clients: ManageMode = "owned"
    client_scopes: ManageMode = "owned"
    flows: ManageMode = "owned"
    protocol_mappers: ManageMode = "owned"
    # LDAP federations: only owned ones are ever deleted, and only with `full` (deleting one deletes its users).
    ldap: ManageMode = "owned"


class RegistrationSpec(Spec):
    allowed: bool | None = None
    email_as_username: bool | None = None
    login_with_email: bool | None = None
    verify_email: bool | None = None
    duplicate_emails: bool | None = None
    reset_password: bool | None = None
    remember_me: bool | None = None
    edit_username: bool | None = None


class SessionsSpec(Spec):
    idle_timeout: Duration | None = None
    max_lifespan: Duration | None = None
    remember_me_idle_timeout: Duration | None = None
    remember_me_max_lifespan: Duration | None = None
    offline_idle_timeout: Duration | None = None
    access_token_lifespan: Duration | None = None
    access_token_lifespan_implicit: Duration | None = None
    access_code_lifespan: Duration | None = None
    action_token_lifespan: Duration | None = None


class EventsSpec(Spec):
    enabled: bool | None = None
    types: tuple[NonEmpty, ...] | None = Field(None, description="event types to store, e.g. LOGIN, LOGIN_ERROR")
    expiration: Duration | None = None
    admin_events: bool | None = None
    admin_events_details: bool | None = None
    listeners: tuple[NonEmpty, ...] | None = None


class SmtpSpec(Spec):
    host: NonEmpty
    port: int = Field(25, ge=1, le=65535)
    from_address: NonEmpty = Field(alias="from")
    from_display_name: str | None = None
    reply_to: str | None = None
    starttls: bool = False
    ssl: bool = False
    user: str | None = None
    password: SecretValue | None = None

    @model_validator(mode="after")
    def _auth_needs_user(self) -> SmtpSpec:
        if self.password is not None and not self.user:
            raise ValueError("smtp.password is set but smtp.user is not")
        return self


class InternationalizationSpec(Spec):
    enabled: bool = True
    supported_locales: tuple[NonEmpty, ...] = ("en",)
    default_locale: NonEmpty = "en"

    @model_validator(mode="after")
    def _default_is_supported(self) -> InternationalizationSpec:
        if self.default_locale not in self.supported_locales:
            raise ValueError(f"default_locale '{self.default_locale}' is not in supported_locales")
        return self


class LockoutSpec(Spec):
    """Brute-force detection, in the words of a password regulation."""

    enabled: bool = True
    max_failures: int | None = Field(None, ge=1, description="failures before a temporary lockout")
    wait_increment: Duration | None = None
    max_wait: Duration | None = None
    failure_reset: Duration | None = Field(None, description="failures older than this are forgotten")
    quick_login_check: Duration | None = None
    min_quick_login_wait: Duration | None = None
    permanent_after: int | None = Field(
        None, ge=0, description="temporary lockouts before a permanent one; 0 = lock permanently at once"
    )


class OtpPolicySpec(Spec):
    type: Literal["totp", "hotp"] | None = None
    algorithm: Literal["HmacSHA1", "HmacSHA256", "HmacSHA512"] | None = None
    digits: Literal[6, 8] | None = None
    period: Duration | None = None
    look_ahead: int | None = Field(None, ge=0)
    initial_counter: int | None = Field(None, ge=0)
    reusable: bool | None = None


class WebAuthnPolicySpec(Spec):
    rp_name: str | None = None
    rp_id: str | None = None
    signature_algorithms: tuple[NonEmpty, ...] | None = None
    attestation: Literal["not specified", "none", "indirect", "direct", "enterprise"] | None = None
    authenticator_attachment: Literal["not specified", "platform", "cross-platform"] | None = None
    require_resident_key: Literal["not specified", "Yes", "No"] | None = None
    user_verification: Literal["not specified", "required", "preferred", "discouraged"] | None = None
    timeout: Duration | None = None


Attributes = dict[str, tuple[str, ...]]


def _attribute_values(value: object) -> object:
    """Attributes may be written `key: value` or `key: [v1, v2]`; stored as tuples of strings."""
    if isinstance(value, dict):
        return {k: tuple(str(x) for x in v) if isinstance(v, list | tuple) else (str(v),) for k, v in value.items()}
    return value


AttributeMap = Annotated[Attributes, BeforeValidator(_attribute_values)]


class CompositesSpec(Spec):
    realm: tuple[NonEmpty, ...] = ()
    clients: dict[str, tuple[NonEmpty, ...]] = Field(default_factory=dict)


class RoleSpec(Spec):
    name: NonEmpty
    description: str | None = None
    attributes: AttributeMap | None = None
    composites: CompositesSpec | None = None


class GroupSpec(Spec):
    path: GroupPath
    attributes: AttributeMap | None = None
    realm_roles: tuple[NonEmpty, ...] | None = None
    client_roles: dict[str, tuple[NonEmpty, ...]] | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent_path(self) -> str | None:
        parent = self.path.rsplit("/", 1)[0]
        return parent or None


class ProtocolMapperSpec(Spec):
    """A token mapper; `user_attribute` is the common case, anything else via `mapper` + `config`."""

    name: NonEmpty
    user_attribute: str | None = None
    claim: str | None = None
    multivalued: bool = False
    json_type: Literal["String", "long", "int", "boolean", "JSON"] = "String"
    in_id_token: bool = True
    in_access_token: bool = True
    in_userinfo: bool = True
    mapper: str | None = Field(None, description="Keycloak protocolMapper id, e.g. oidc-usermodel-attribute-mapper")
    config: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ProtocolMapperSpec:
        if (self.user_attribute is None) == (self.mapper is None):
            raise ValueError(f"mapper '{self.name}': give either user_attribute (and claim) or mapper with config")
        return self


class ClientSpec(Spec):
    client_id: NonEmpty
    name: str | None = None
    description: str | None = None
    enabled: bool | None = None
    public: bool | None = None
    secret: SecretValue | None = None
    root_url: str | None = None
    base_url: str | None = None
    redirect_uris: tuple[str, ...] | None = None
    web_origins: tuple[str, ...] | None = None
    post_logout_redirect_uris: tuple[str, ...] | None = None
    standard_flow: bool | None = None
    implicit_flow: bool | None = None
    direct_access_grants: bool | None = None
    service_account: bool | None = None
    consent_required: bool | None = None
    pkce: Literal["S256", "plain"] | None = None
    default_client_scopes: tuple[NonEmpty, ...] | None = None
    optional_client_scopes: tuple[NonEmpty, ...] | None = None
    protocol_mappers: tuple[ProtocolMapperSpec, ...] | None = None
    roles: tuple[RoleSpec, ...] | None = None
    service_account_roles: CompositesSpec | None = None
    attributes: dict[str, str] | None = None

    @model_validator(mode="after")
    def _public_has_no_secret(self) -> ClientSpec:
        if self.public and self.secret is not None:
            raise ValueError(f"client '{self.client_id}' is public and cannot have a secret")
        if self.public and self.service_account:
            raise ValueError(f"client '{self.client_id}' is public and cannot have a service account")
        if self.service_account_roles is not None and (self.public or self.service_account is False):
            raise ValueError(f"client '{self.client_id}' has service_account_roles but no service account")
        return self

    @model_validator(mode="after")
    def _scopes_and_names(self) -> ClientSpec:
        both = set(self.default_client_scopes or ()) & set(self.optional_client_scopes or ())
        if both:
            raise ValueError(
                f"client '{self.client_id}': scope '{sorted(both)[0]}' is both a default and an optional scope"
            )
        _unique(f"client '{self.client_id}' mapper", (m.name for m in self.protocol_mappers or ()))
        _unique(f"client '{self.client_id}' role", (r.name for r in self.roles or ()))
        return self


class ClientScopeSpec(Spec):
    name: NonEmpty
    description: str | None = None
    protocol: Literal["openid-connect", "saml"] = "openid-connect"
    include_in_token_scope: bool | None = None
    protocol_mappers: tuple[ProtocolMapperSpec, ...] | None = None
    attributes: dict[str, str] | None = Field(None, description="e.g. display.on.consent.screen, consent.screen.text")

    @model_validator(mode="after")
    def _unique_mappers(self) -> ClientScopeSpec:
        _unique(f"client scope '{self.name}' mapper", (m.name for m in self.protocol_mappers or ()))
        return self


def _unique(what: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} '{name}' is listed twice")
        seen.add(name)


def _config_strings(value: object) -> object:
    """Keycloak stores required-action config values as strings: `max_auth_age: 600` means "600"."""
    if isinstance(value, Mapping):
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    return value


class RequiredActionSpec(Spec):
    """A required action; a listed one is registered when needed, never deleted. Unlisted ones are left as
    they are. `config` keys written are managed, other keys are kept."""

    alias: NonEmpty = Field(description="e.g. VERIFY_EMAIL, CONFIGURE_TOTP, TERMS_AND_CONDITIONS, UPDATE_PASSWORD")
    enabled: bool | None = None
    default_action: bool | None = Field(None, description="added to every new user")
    priority: int | None = Field(None, description="lower runs first")
    config: Annotated[dict[str, str], BeforeValidator(_config_strings)] | None = None

    @model_validator(mode="after")
    def _default_needs_enabled(self) -> RequiredActionSpec:
        if self.default_action and self.enabled is False:
            raise ValueError(f"required action '{self.alias}' cannot be a default action while disabled")
        return self


class TermsSpec(Spec):
    """Terms and conditions every user must accept; raising `version` makes every user accept again.

    The version applied is recorded in the realm. The first time (no version recorded yet) only new users
    are asked, unless `first_apply: all-users`. With `required: false` the action is disabled and versions
    are recorded without asking anyone.
    """

    version: int = Field(ge=1)
    required: bool = True
    first_apply: Literal["new-users", "all-users"] = "new-users"


class MfaSpec(Spec):
    """Users holding any listed role (directly, by group or composite) or in a listed group must use OTP.

    Keycloak has no "user in group" condition, so listed groups are granted `group_role`, a plain realm
    role the agent creates and the login flow checks; members of their subgroups inherit it.
    """

    otp_for_roles: tuple[NonEmpty, ...] = ()
    otp_for_groups: tuple[GroupPath, ...] = ()
    flow_alias: NonEmpty = Field("idp-agent browser", pattern=r"^[^/]+$")
    group_role: NonEmpty = "idp-agent-mfa-required"

    @model_validator(mode="after")
    def _not_builtin(self) -> MfaSpec:
        if self.flow_alias == "browser":
            raise ValueError("mfa.flow_alias cannot be 'browser': that is the built-in flow it copies")
        if self.group_role in self.otp_for_roles:
            raise ValueError(
                f"mfa.group_role '{self.group_role}' is managed by the agent; do not list it in otp_for_roles"
            )
        return self


def _validators_from_mapping(value: object) -> object:
    """Validators may be written as Keycloak writes them, `{pattern: {pattern: ...}, length: {max: 20}}`."""
    if isinstance(value, Mapping):
        return tuple({"name": name, "config": config or {}} for name, config in value.items())
    return value


class ProfileValidatorSpec(Spec):
    name: NonEmpty = Field(description="e.g. length, pattern, email, options, person-name-prohibited-characters")
    config: dict[str, Any] = Field(default_factory=dict)


ProfileRole = Literal["user", "admin"]


class ProfileAttributeSpec(Spec):
    """One user-profile attribute. A key left out is not managed: the live value stays, and a new attribute
    gets Keycloak's plain defaults (no validators, not required, single-valued) and view admin+user, edit admin.
    `required_for`/`required_scopes` manage Keycloak's `required` together: writing either writes both."""

    name: NonEmpty = Field(pattern=r"^[A-Za-z0-9._-]+$")
    display_name: str | None = None
    group: str | None = None
    multivalued: bool | None = None
    validators: Annotated[tuple[ProfileValidatorSpec, ...] | None, BeforeValidator(_validators_from_mapping)] = None
    required_for: tuple[ProfileRole, ...] | None = None
    required_scopes: tuple[NonEmpty, ...] | None = None
    view: tuple[ProfileRole, ...] | None = None
    edit: tuple[ProfileRole, ...] | None = None
    annotations: dict[str, Any] | None = None

    @field_validator("validators")
    @classmethod
    def _one_validator_per_name(
        cls, value: tuple[ProfileValidatorSpec, ...] | None
    ) -> tuple[ProfileValidatorSpec, ...] | None:
        names = [validator.name for validator in value or ()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"validator '{twice[0]}' is listed twice")
        return value


class ProfileGroupSpec(Spec):
    """An attribute group (a heading on forms); keys left out are not managed."""

    name: NonEmpty
    display_header: str | None = None
    display_description: str | None = None
    annotations: dict[str, Any] | None = None


class UserProfileSpec(Spec):
    """The declarative user profile.

    `attributes`, when written, is the whole attribute list: live attributes not written are removed from the
    profile (users keep their values, hidden unless unmanaged attributes are enabled), except the built-ins
    username, email, firstName and lastName, which stay as they are live unless written. `groups`, when
    written, is the whole group list, except that a group still used by an attribute that stays is kept.
    """

    unmanaged_attributes: Literal["disabled", "enabled", "admin_view", "admin_edit"] | None = None
    attributes: tuple[ProfileAttributeSpec, ...] | None = None
    groups: tuple[ProfileGroupSpec, ...] | None = None

    @field_validator("attributes", "groups")
    @classmethod
    def _unique_names(cls, value: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        names = [item.name for item in value or ()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"'{twice[0]}' is listed twice")
        return value

    @model_validator(mode="after")
    def _groups_exist(self) -> UserProfileSpec:
        if self.groups is None:
            return self
        known = {group.name for group in self.groups}
        for attribute in self.attributes or ():
            if attribute.group is not None and attribute.group not in known:
                raise ValueError(f"attribute '{attribute.name}' names group '{attribute.group}', not under groups")
        return self


def _config_values(value: object) -> object:
    """Component config is lists of strings in Keycloak; YAML scalars (true, 30) are written as strings."""
    if not isinstance(value, Mapping):
        return value
    no_secrets_in(value, "config")
    return {
        str(key): tuple(_config_scalar(v) for v in item) if isinstance(item, list | tuple) else (_config_scalar(item),)
        for key, item in value.items()
    }


def _config_scalar(value: object) -> object:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


ComponentConfig = Annotated[dict[str, tuple[str, ...]], BeforeValidator(_config_values)]
SyncPeriod = Annotated[Duration | Literal["off"], Field(description="a duration such as 1d, or off")]


class LdapMapperSpec(Spec):
    """A mapper of one federation, managed by name; config keys not written are left as they are live."""

    name: NonEmpty
    type: NonEmpty = Field(description="e.g. user-attribute-ldap-mapper, group-ldap-mapper")
    config: ComponentConfig = Field(default_factory=dict)


class LdapFederationSpec(Spec):
    """Keycloak's own LDAP provider; updated in place, never deleted and recreated (that deletes its users).

    `full_sync_period`/`changed_sync_period` left out are not managed; `off` turns periodic sync off.
    `config` holds other Keycloak config keys (connectionTimeout, batchSizeForSync, cachePolicy, ...) as written.
    """

    name: NonEmpty
    connection_url: FromEnv
    bind_dn: FromEnv
    bind_credential: SecretValue
    users_dn: FromEnv
    vendor: Literal["other", "ad", "rhds", "tivoli", "edirectory"] = "other"
    username_attribute: NonEmpty = "uid"
    rdn_attribute: NonEmpty = "uid"
    uuid_attribute: NonEmpty = "entryUUID"
    user_object_classes: tuple[NonEmpty, ...] = ("inetOrgPerson", "organizationalPerson")
    user_filter: str | None = Field(
        None, pattern=r"^(\(.*\))?$", description="an LDAP filter such as (employeeType=staff); '' for none"
    )
    search_scope: Literal["one", "subtree"] = "subtree"
    edit_mode: Literal["READ_ONLY", "WRITABLE", "UNSYNCED"] = "READ_ONLY"
    import_users: bool = True
    sync_registrations: bool = False
    pagination: bool = True
    start_tls: bool = False
    trust_email: bool = False
    full_sync_period: SyncPeriod | None = None
    changed_sync_period: SyncPeriod | None = None
    enabled: bool = True
    config: ComponentConfig | None = None
    mappers: tuple[LdapMapperSpec, ...] = ()

    @field_validator("mappers")
    @classmethod
    def _unique_mappers(cls, value: tuple[LdapMapperSpec, ...]) -> tuple[LdapMapperSpec, ...]:
        names = [mapper.name for mapper in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"mapper '{twice[0]}' is listed twice")
        return value


class RealmSpec(Spec):
    """One realm. `password_policy` and `lockout` take a preset name from policies/ or an inline spec."""

    realm: NonEmpty = Field(pattern=r"^[A-Za-z0-9._-]+$")
    display_name: str | None = None
    display_name_html: str | None = None
    enabled: bool | None = None
    managed: ManagedSpec = Field(default_factory=ManagedSpec)
    registration: RegistrationSpec | None = None
    sessions: SessionsSpec | None = None
    events: EventsSpec | None = None
    smtp: SmtpSpec | None = None
    internationalization: InternationalizationSpec | None = None
    password_policy: str | PasswordPolicySpec | None = None
    lockout: str | LockoutSpec | None = None
    otp_policy: OtpPolicySpec | None = None
    webauthn_policy: WebAuthnPolicySpec | None = None
    roles: tuple[RoleSpec, ...] | None = None
    groups: tuple[GroupSpec, ...] | None = None
    default_roles: tuple[NonEmpty, ...] | None = None
    default_groups: tuple[GroupPath, ...] | None = None
    clients: tuple[ClientSpec, ...] | None = None
    client_scopes: tuple[ClientScopeSpec, ...] | None = None
    required_actions: tuple[RequiredActionSpec, ...] | None = None
    terms: TermsSpec | None = None
    mfa: MfaSpec | None = None
    user_profile: UserProfileSpec | None = None
    ldap: tuple[LdapFederationSpec, ...] | None = None
    keycloak: dict[str, Any] | None = Field(None, description="Keycloak realm representation keys, applied as written")

    @field_validator("keycloak")
    @classmethod
    def _keycloak_keeps_no_secret(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        no_secrets_in(value, "keycloak")
        no_bookkeeping_in((value or {}).get("attributes"))
        return value

    @field_validator("roles", "groups", "clients", "client_scopes", "ldap", "required_actions")
    @classmethod
    def _unique_names(cls, value: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        if value is None:
            return value
        seen: set[str] = set()
        for item in value:
            key = _identity(item)
            if key in seen:
                raise ValueError(f"'{key}' is listed twice")
            seen.add(key)
        return value


def _identity(item: Any) -> str:
    # client_id first: a client's `name` is its display name, often left out.
    for attribute in ("client_id", "path", "alias", "name"):
        if hasattr(item, attribute) and attribute in type(item).model_fields:
            return str(getattr(item, attribute))
    return str(item)
