"""The LDAP federation kinds' pure parts: compiling a federation, comparing config, planning."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

from agent.config.diagnostics import ConfigErrors
from agent.errors import Rejected
from agent.keycloak.models import USER_STORAGE_PROVIDER, Component
from agent.realm.kinds.base import LiveRealm, fingerprint_attributes
from agent.realm.kinds.ldap_federation import (
    KIND,
    MAPPERS_KIND,
    LiveLdap,
    check_written_keys,
    compile_federation,
    credential_name,
    diff_config,
    normalized,
    owned_mark,
    plan_federations,
    plan_mappers,
    read_live_ldap,
)
from agent.realm.live import LiveReader
from agent.realm.loader import load_realms
from agent.realm.native import friendly_federation_and_profile, ldap_credential_reference
from agent.realm.plan import HIDDEN
from agent.realm.spec import LdapFederationSpec, RealmSpec
from agent.secrets import Secret

REALM_ID = "realm-uuid"
CREDENTIAL = Secret("bind-secret")


def federation_data(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "corp",
        "connection_url": "ldap://ldap.example.org:389",
        "bind_dn": "cn=admin,dc=example,dc=org",
        "bind_credential": CREDENTIAL,
        "users_dn": "ou=people,dc=example,dc=org",
        **overrides,
    }


def spec_of(*federations: dict[str, Any], **extra: Any) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "acme", "ldap": list(federations), **extra})


def live_realm(attributes: dict[str, str] | None = None) -> LiveRealm:
    return LiveRealm("acme", exists=True, id=REALM_ID, representation={"attributes": attributes or {}})


def component(id_: str, name: str, config: dict[str, tuple[str, ...]], provider: str = "ldap") -> Component:
    return Component(id_, name, provider, USER_STORAGE_PROVIDER, REALM_ID, None, MappingProxyType(config))


def applied(spec: RealmSpec, index: int = 0) -> Component:
    """The federation as Keycloak holds it after the spec was applied (credential masked)."""
    assert spec.ldap is not None
    config = dict(compile_federation(spec.ldap[index]))
    config["bindCredential"] = ("**********",)
    return component("fed-1", spec.ldap[index].name, config)


def recorded(*owned: str, secret: Secret = CREDENTIAL) -> dict[str, str]:
    """Realm attributes after the agent created `owned` components and wrote `secret` for `corp`."""
    marks = {owned_mark(component_id): "x" for component_id in owned}
    return {**marks, **fingerprint_attributes(REALM_ID, {credential_name("corp"): secret})}


def test_compile_writes_every_setting_in_keycloak_form() -> None:
    spec = LdapFederationSpec.model_validate(
        federation_data(
            search_scope="one", full_sync_period="off", changed_sync_period="1h", config={"batchSizeForSync": 500}
        )
    )
    assert compile_federation(spec) == {
        "connectionUrl": ("ldap://ldap.example.org:389",),
        "bindDn": ("cn=admin,dc=example,dc=org",),
        "usersDn": ("ou=people,dc=example,dc=org",),
        "vendor": ("other",),
        "usernameLDAPAttribute": ("uid",),
        "rdnLDAPAttribute": ("uid",),
        "uuidLDAPAttribute": ("entryUUID",),
        "userObjectClasses": ("inetOrgPerson, organizationalPerson",),
        "searchScope": ("1",),
        "editMode": ("READ_ONLY",),
        "importEnabled": ("true",),
        "syncRegistrations": ("false",),
        "pagination": ("true",),
        "startTls": ("false",),
        "trustEmail": ("false",),
        "fullSyncPeriod": ("-1",),
        "changedSyncPeriod": ("3600",),
        "enabled": ("true",),
        "authType": ("simple",),
        "batchSizeForSync": ("500",),
    }


def test_compile_never_carries_the_credential_and_leaves_unwritten_periods_out() -> None:
    config = compile_federation(LdapFederationSpec.model_validate(federation_data()))
    assert "bindCredential" not in config
    assert "fullSyncPeriod" not in config and "customUserSearchFilter" not in config


@pytest.mark.parametrize(
    ("key", "live", "desired"),
    [
        ("userObjectClasses", ("organizationalPerson,inetOrgPerson",), ("inetOrgPerson, organizationalPerson",)),
        ("userObjectClasses", ("InetOrgPerson",), ("inetorgperson",)),
        ("syncRegistrations", None, ("false",)),
        ("pagination", ("True",), ("true",)),
        ("fullSyncPeriod", ("-1",), ("0",)),
        ("fullSyncPeriod", ("86400",), ("86400",)),
        ("customUserSearchFilter", None, ("",)),
        ("read.only", ("TRUE",), ("true",)),
    ],
)
def test_values_equal_as_keycloak_reads_them(key: str, live: tuple[str, ...] | None, desired: tuple[str, ...]) -> None:
    assert normalized(key, live) == normalized(key, desired)


@pytest.mark.parametrize(
    ("key", "live", "desired"),
    [
        ("userObjectClasses", ("inetOrgPerson",), ("inetOrgPerson, organizationalPerson",)),
        ("pagination", None, ("true",)),
        ("fullSyncPeriod", ("-1",), ("3600",)),
        ("usersDn", ("ou=people,dc=a",), ("ou=staff,dc=a",)),
        ("connectionUrl", None, ("ldap://x",)),
    ],
)
def test_values_that_differ(key: str, live: tuple[str, ...] | None, desired: tuple[str, ...]) -> None:
    assert normalized(key, live) != normalized(key, desired)


def test_diff_shows_federation_keys_as_the_config_file_writes_them() -> None:
    live = {"searchScope": ("2",), "fullSyncPeriod": ("-1",), "pagination": ("false",), "foo": ("1",)}
    desired = {"searchScope": ("1",), "fullSyncPeriod": ("3600",), "pagination": ("true",), "foo": ("2",)}
    changes = [(c.field, c.live, c.desired) for c in diff_config(live, desired, friendly=True)]
    assert changes == [
        ("search_scope", "subtree", "one"),
        ("full_sync_period", "off", 3600),
        ("pagination", False, True),
        ("config.foo", "1", "2"),
    ]


def test_diff_ignores_keys_not_written() -> None:
    assert diff_config({"usersDn": ("a",), "lastSync": ("123",)}, {"usersDn": ("a",)}) == ()


def test_new_federation_is_created_with_a_hidden_credential() -> None:
    [change] = plan_federations(spec_of(federation_data()), live_realm(), LiveLdap({}))
    assert (change.kind, change.action, change.key) == (KIND, "create", "corp")
    credential = [field for field in change.fields if field.field == "bind_credential"]
    assert [field.shown() for field in credential] == [(None, HIDDEN)]
    assert change.desired.credential is CREDENTIAL
    assert CREDENTIAL.reveal() not in repr(change)


def test_applied_federation_plans_nothing() -> None:
    spec = spec_of(federation_data())
    live = LiveLdap({"corp": applied(spec)})
    assert plan_federations(spec, live_realm(recorded("fed-1")), live) == []


def test_changed_credential_alone_is_one_hidden_field() -> None:
    spec = spec_of(federation_data())
    live = LiveLdap({"corp": applied(spec)})
    [change] = plan_federations(spec, live_realm(recorded("fed-1", secret=Secret("old"))), live)
    assert [(field.field, field.shown()) for field in change.fields] == [("bind_credential", (HIDDEN, HIDDEN))]
    assert change.action == "update"


def test_drift_is_fixed_in_place_without_resending_the_credential() -> None:
    spec = spec_of(federation_data())
    drifted = applied(spec)
    drifted = component(drifted.id, "corp", {**drifted.config, "usersDn": ("ou=other,dc=example,dc=org",)})
    [change] = plan_federations(spec, live_realm(recorded("fed-1")), LiveLdap({"corp": drifted}))
    assert [(f.field, f.live, f.desired) for f in change.fields] == [
        ("users_dn", "ou=other,dc=example,dc=org", "ou=people,dc=example,dc=org")
    ]
    assert change.desired.credential is None
    assert change.live.id == "fed-1"


@pytest.mark.parametrize(
    ("mode", "owned", "expected"),
    [
        ("owned", True, [("update", "corp")]),
        ("no-delete", True, [("update", "corp")]),
        ("full", True, [("delete", "corp")]),
        ("owned", False, []),
        ("full", False, []),
    ],
)
def test_unwritten_federation(mode: str, owned: bool, expected: list[tuple[str, str]]) -> None:
    spec = spec_of(managed={"ldap": mode})
    live = LiveLdap({"corp": applied(spec_of(federation_data()))})
    changes = plan_federations(spec, live_realm(recorded("fed-1") if owned else {}), live)
    assert [(change.action, change.key) for change in changes] == expected
    for change in changes:
        assert change.note
        if change.action == "update":
            assert change.desired.release


def test_ldap_not_written_is_not_managed() -> None:
    live = LiveLdap({"corp": applied(spec_of(federation_data()))})
    assert plan_federations(RealmSpec.model_validate({"realm": "acme"}), live_realm(recorded("fed-1")), live) == []


def test_only_ldap_federations_are_read_and_a_duplicate_name_resolves_the_same_way() -> None:
    reader = SimpleNamespace(
        user_storage=[
            component("b-second", "corp", {}),
            component("krb", "kerberos", {}, provider="kerberos"),
            component("a-first", "corp", {}),
        ],
        ldap_mappers={"a-first": [], "b-second": []},
    )
    live = read_live_ldap(cast(LiveReader, reader))
    assert {name: federation.id for name, federation in live.federations.items()} == {"corp": "a-first"}


MAPPER = {
    "name": "department",
    "type": "user-attribute-ldap-mapper",
    "config": {"ldap.attribute": "departmentNumber", "read.only": True},
}


def mapper(
    id_: str, name: str, config: dict[str, tuple[str, ...]], provider: str = "user-attribute-ldap-mapper"
) -> Component:
    return Component(id_, name, provider, "mapper-type", "fed-1", None, MappingProxyType(config))


DEFAULT_MAPPERS = (
    mapper("m-user", "username", {"ldap.attribute": ("uid",), "read.only": ("true",)}),
    mapper("m-email", "email", {"ldap.attribute": ("mail",)}),
    mapper("m-krb", "Kerberos principal attribute mapper", {}, "kerberos-principal-attribute-mapper"),
)


def mapper_plan(
    mappers: list[dict[str, Any]], live: tuple[Component, ...], owned: tuple[str, ...] = (), **extra: Any
) -> list[tuple[str, str, list[tuple[str, Any, Any]]]]:
    spec = spec_of(federation_data(mappers=mappers), **extra)
    ldap = LiveLdap({"corp": applied(spec)}, {"fed-1": live})
    changes = plan_mappers(spec, live_realm(recorded("fed-1", *owned)), ldap)
    assert all(change.kind == MAPPERS_KIND for change in changes)
    return [(c.action, c.key, [(f.field, f.live, f.desired) for f in c.fields]) for c in changes]


def test_mapper_is_created_and_keycloak_defaults_are_never_drift() -> None:
    assert mapper_plan([MAPPER], DEFAULT_MAPPERS) == [
        (
            "create",
            "corp/department",
            [
                ("type", None, "user-attribute-ldap-mapper"),
                ("config.ldap.attribute", None, "departmentNumber"),
                ("config.read.only", None, "true"),
            ],
        )
    ]


def test_applied_mapper_plans_nothing_even_with_keys_keycloak_added() -> None:
    live = mapper(
        "m-dep", "department", {"ldap.attribute": ("departmentNumber",), "read.only": ("true",), "extra": ("x",)}
    )
    assert mapper_plan([MAPPER], (*DEFAULT_MAPPERS, live), owned=("m-dep",)) == []


def test_mapper_config_is_updated_and_type_change_replaces() -> None:
    live = mapper("m-dep", "department", {"ldap.attribute": ("ou",), "read.only": ("true",)})
    assert mapper_plan([MAPPER], (live,), owned=("m-dep",)) == [
        ("update", "corp/department", [("config.ldap.attribute", "ou", "departmentNumber")])
    ]
    retyped = mapper("m-dep", "department", dict(live.config), provider="hardcoded-ldap-attribute-mapper")
    [(action, _key, fields)] = mapper_plan([MAPPER], (retyped,), owned=("m-dep",))
    assert (action, fields[0]) == ("update", ("type", "hardcoded-ldap-attribute-mapper", "user-attribute-ldap-mapper"))


def test_a_written_default_mapper_is_updated_in_place() -> None:
    email = {"name": "email", "type": "user-attribute-ldap-mapper", "config": {"ldap.attribute": "mailPrimary"}}
    assert mapper_plan([email], DEFAULT_MAPPERS) == [
        ("update", "corp/email", [("config.ldap.attribute", "mail", "mailPrimary")])
    ]


@pytest.mark.parametrize(
    ("mode", "owned", "expected"),
    [
        ("owned", ("m-dep",), [("delete", "corp/department", [])]),
        ("full", ("m-dep",), [("delete", "corp/department", [])]),
        ("no-delete", ("m-dep",), []),
        # Keycloak's own mappers are never deleted, whatever the mode.
        ("full", (), []),
    ],
)
def test_unwritten_mappers(mode: str, owned: tuple[str, ...], expected: list[Any]) -> None:
    live = mapper("m-dep", "department", {"ldap.attribute": ("departmentNumber",)})
    assert mapper_plan([], (*DEFAULT_MAPPERS, live), owned=owned, managed={"ldap": mode}) == expected


def test_mappers_of_a_new_federation_are_all_created() -> None:
    spec = spec_of(federation_data(mappers=[MAPPER]))
    [change] = plan_mappers(spec, live_realm(), LiveLdap({}))
    assert (change.action, change.key) == ("create", "corp/department")


def test_keys_keycloak_dropped_are_reported() -> None:
    live = mapper("m", "department", {"ldap.attribute": ("departmentNumber",)})
    check_written_keys(live, {"ldap.attribute": ("departmentNumber",), "empty": ("",)}, "mapper")
    with pytest.raises(Rejected, match=r"ignored config key.* typo"):
        check_written_keys(live, {"typo": ("x",)}, "mapper 'corp/department'")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (federation_data(mappers=[MAPPER, MAPPER]), "mapper 'department' is listed twice"),
        (federation_data(user_filter="uid=*"), "should match pattern"),
        (federation_data(full_sync_period="never"), "full_sync_period"),
        (federation_data(search_scope="base"), "search_scope"),
    ],
)
def test_invalid_federations_are_config_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LdapFederationSpec.model_validate(data)


def test_exported_federation_plans_empty_against_itself() -> None:
    spec = spec_of(
        federation_data(
            mappers=[MAPPER],
            search_scope="one",
            full_sync_period="off",
            changed_sync_period="1d",
            user_filter="(employeeType=staff)",
            config={"connectionTimeout": "5000"},
        )
    )
    federation = applied(spec)
    live_mapper = mapper("m-dep", "department", {"ldap.attribute": ("departmentNumber",), "read.only": ("true",)})
    export = {
        "components": {
            USER_STORAGE_PROVIDER: [
                {
                    "id": federation.id,
                    "name": "corp",
                    "providerId": "ldap",
                    "config": {key: list(values) for key, values in federation.config.items()},
                    "subComponents": {
                        "org.keycloak.storage.ldap.mappers.LDAPStorageMapper": [
                            {
                                "name": "department",
                                "providerId": live_mapper.provider_id,
                                "config": {k: list(v) for k, v in live_mapper.config.items()},
                            }
                        ]
                    },
                }
            ]
        }
    }
    [friendly] = friendly_federation_and_profile(export)["ldap"]
    assert friendly["bind_credential"] == ldap_credential_reference("corp") == "${env:LDAP_BIND_CREDENTIAL_CORP}"
    assert friendly["search_scope"] == "one" and friendly["full_sync_period"] == "off"
    assert friendly["config"] == {"connectionTimeout": "5000"}
    adopted = spec_of({**friendly, "bind_credential": CREDENTIAL})
    ldap = LiveLdap({"corp": federation}, {federation.id: (live_mapper,)})
    assert plan_federations(adopted, live_realm(recorded()), ldap) == []
    assert plan_mappers(adopted, live_realm(recorded()), ldap) == []


@pytest.mark.parametrize(
    ("yaml_text", "where"),
    [
        (
            "ldap:\n  - name: corp\n    connection_url: ldap://h\n    bind_dn: cn=a\n    bind_credential: ${env:P}\n"
            "    users_dn: ou=p\n    config:\n      bindCredential: hunter2\n",
            "r.yaml:9:7: ldap[0].config: 'bindCredential' in config is a secret",
        ),
        (
            "ldap:\n  - name: corp\n    connection_url: ldap://h\n    bind_dn: cn=a\n    bind_credential: ${env:P}\n"
            "    users_dn: ou=p\n    mappers:\n      - name: m\n        type: x\n"
            "        config: {bindCredential: hunter2}\n",
            "'bindCredential' in config is a secret",
        ),
        (
            "keycloak:\n  smtpServer:\n    password: ${env:P}\n",
            "r.yaml:3:3: keycloak: 'password' in keycloak is a secret",
        ),
        ("keycloak:\n  smtpServer: {host: h, password: hunter2}\n", "'password' in keycloak is a secret"),
        # Component config values are lists: a secret in a list is as much shown as one alone.
        (
            "ldap:\n  - name: corp\n    connection_url: ldap://h\n    bind_dn: cn=a\n    bind_credential: ${env:P}\n"
            "    users_dn: ou=p\n    config:\n      bindCredential: [hunter2]\n",
            "r.yaml:9:7: ldap[0].config: 'bindCredential' in config is a secret",
        ),
        (
            "ldap:\n  - name: corp\n    connection_url: ldap://h\n    bind_dn: cn=a\n    bind_credential: ${env:P}\n"
            "    users_dn: ou=p\n    config:\n      krb5Password: [x, hunter2]\n",
            "'krb5Password' in config is a secret",
        ),
        (
            "ldap:\n  - name: corp\n    connection_url: ldap://h\n    bind_dn: cn=a\n    bind_credential: ${env:P}\n"
            "    users_dn: ou=p\n    mappers:\n      - name: m\n        type: x\n"
            "        config: {bindCredential: [hunter2]}\n",
            "'bindCredential' in config is a secret",
        ),
        (
            "ldap:\n  - name: corp\n    connection_url: ldap://h\n    bind_dn: cn=a\n    bind_credential: ${env:P}\n"
            "    users_dn: ou=p\n    config:\n      bindCredential: 12345678\n",
            "'bindCredential' in config is a secret",
        ),
        ("keycloak:\n  smtpServer: {host: h, password: [hunter2]}\n", "'password' in keycloak is a secret"),
        (
            "keycloak:\n  users:\n    - username: ann\n      credentials: [{type: password, value: hunter2}]\n",
            "'credentials' in keycloak is a secret",
        ),
        (
            "keycloak:\n  attributes: {idp-agent.managed.component.c1: abc}\n",
            "'idp-agent.managed.component.c1' in keycloak.attributes is the agent's or Keycloak's own bookkeeping",
        ),
    ],
)
def test_a_secret_in_a_map_applied_as_written_is_refused_where_it_is(
    tmp_path: Path, yaml_text: str, where: str
) -> None:
    """There it would be shown in every plan (and differ from Keycloak's masked copy at every run), and a
    ${env:} value could not be sent at all: the error names the key, never the value."""
    folder = tmp_path / "realm-config"
    folder.mkdir()
    (folder / "r.yaml").write_text("realm: corp\n" + yaml_text)
    with pytest.raises(ConfigErrors) as raised:
        load_realms([folder], policies_dir=tmp_path / "policies", env={"P": "s3cr3t-env"})
    text = str(raised.value)
    assert where in text and "hunter2" not in text and "s3cr3t-env" not in text and "12345678" not in text


def test_a_flag_named_like_a_secret_is_no_secret(tmp_path: Path) -> None:
    folder = tmp_path / "realm-config"
    folder.mkdir()
    (folder / "r.yaml").write_text(
        "realm: corp\nkeycloak:\n  revokeRefreshToken: true\n  requiredCredentials: [password]\n"
    )
    [loaded] = load_realms([folder], policies_dir=tmp_path / "policies", env={})
    assert loaded.spec.keycloak == {"revokeRefreshToken": True, "requiredCredentials": ["password"]}


def test_a_keycloak_key_a_written_setting_also_sets_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "realm-config"
    folder.mkdir()
    text = (
        "realm: corp\nsessions:\n  idle_timeout: 30m\nkeycloak:\n  ssoSessionIdleTimeout: 60\n"
        "  revokeRefreshToken: true\n"
    )
    (folder / "r.yaml").write_text(text)
    with pytest.raises(ConfigErrors) as raised:
        load_realms([folder], policies_dir=tmp_path / "policies", env={})
    [problem] = raised.value.diagnostics
    assert (problem.line, problem.message) == (
        5,
        "keycloak: ssoSessionIdleTimeout is also set by a setting written above; one would silently win",
    )
