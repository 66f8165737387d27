"""The local stack's lifecycle (`up`, `down`, `status`) and the connection settings of what it runs.

State directory layout: credentials.json (0600), stack.json (ports), keycloak/ (home, db, log, pid),
ldap/ (slapd.conf, db, pid). Ports and credentials are kept across `down`, so a restart looks the same.
"""

from __future__ import annotations

import os
import secrets
import shlex
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent import paths
from agent.errors import StackError
from agent.secrets import Secret, read_secret
from agent.settings import KeycloakConnection, LdapConnection
from agent.stack import keycloak, processes
from agent.stack.demo_directory import DEPARTMENTS, GROUPS, PEOPLE, demo_ldif
from agent.stack.java import find_java
from agent.stack.keycloak import KeycloakInstance, KeycloakPorts
from agent.stack.slapd import DEFAULT_SUFFIX, SlapdInstance, ensure_slapd_installed

Echo = Callable[[str], None]

COMPONENTS = ("keycloak", "ldap")
STACK_FILE = "stack.json"
CREDENTIALS_FILE = "credentials.json"
LOCK_FILE = "stack.lock"
ADMIN_USER_ENV = "IDP_STACK_ADMIN_USER"
ADMIN_PASSWORD_ENV = "IDP_STACK_ADMIN_PASSWORD"  # noqa: S105 (a variable name, not a password)
DEFAULT_ADMIN_USER = "admin"
PASSWORD_BYTES = 24
LDAP_SUFFIX = DEFAULT_SUFFIX


@dataclass(frozen=True)
class KeycloakInfo:
    """The local Keycloak as last configured in the state directory, and whether it runs now."""

    running: bool
    pid: int | None
    version: str
    url: str
    admin_console_url: str
    health_url: str
    admin_user: str
    log_path: Path


@dataclass(frozen=True)
class LdapInfo:
    """The local slapd as last configured in the state directory, and whether it runs now."""

    running: bool
    pid: int | None
    url: str
    base_dn: str
    bind_dn: str
    directory: Path


@dataclass(frozen=True)
class StackStatus:
    """Both components; None for one never started from this state directory."""

    state_dir: Path
    keycloak: KeycloakInfo | None
    ldap: LdapInfo | None

    @property
    def all_running(self) -> bool:
        parts = (self.keycloak, self.ldap)
        return all(part is not None and part.running for part in parts)


@dataclass(frozen=True)
class StackPorts:
    """Ports chosen for the stack, persisted in stack.json so `status`, `env` and the next `up` agree."""

    keycloak_http: int | None = None
    keycloak_management: int | None = None
    ldap: int | None = None


@dataclass(frozen=True)
class StackCredentials:
    """The Keycloak bootstrap admin and the slapd root password, fixed when the state is created."""

    admin_user: str
    admin_password: Secret
    ldap_password: Secret


# --- public functions ------------------------------------------------------------------------------


def up(
    state_dir: Path | None = None,
    *,
    keycloak_port: int | None = None,
    ldap_port: int | None = None,
    components: Collection[str] = COMPONENTS,
    timeout_seconds: float = keycloak.READY_TIMEOUT_SECONDS,
    echo: Echo = print,
) -> StackStatus:
    """Start what is not running yet (a second call is a no-op) and return the resulting status."""
    unknown = set(components) - set(COMPONENTS)
    if unknown or not components:
        raise StackError(f"unknown stack components {sorted(unknown)}", hint=f"choose from {', '.join(COMPONENTS)}")
    root = processes.make_private_dir(_resolve(state_dir))
    with processes.file_lock(root / LOCK_FILE):
        credentials = _load_or_create_credentials(root, os.environ)
        if "ldap" in components:
            _up_ldap(root, credentials, ldap_port, echo)
        if "keycloak" in components:
            _up_keycloak(root, credentials, keycloak_port, timeout_seconds, echo)
    return status(root)


def down(state_dir: Path | None = None, *, echo: Echo = print) -> None:
    """Stop the processes this state directory started (by their pid files); data and ports are kept."""
    root = _resolve(state_dir)
    if not root.is_dir():
        echo(f"Nothing to stop: {root} does not exist")
        return
    with processes.file_lock(root / LOCK_FILE):
        stopped = []
        if _keycloak(root).stop():
            stopped.append("Keycloak")
        credentials = _read_credentials(root)
        if credentials is not None and _slapd(root, credentials).stop():
            stopped.append("slapd")
    echo(f"Stopped {' and '.join(stopped)}" if stopped else "Nothing was running")


def status(state_dir: Path | None = None) -> StackStatus:
    """What runs from the state directory, with URLs; reads files and /proc only."""
    root = _resolve(state_dir)
    credentials = _read_credentials(root)
    ports = _load_ports(root)
    if credentials is None:
        return StackStatus(root, None, None)
    return StackStatus(root, _keycloak_info(root, ports, credentials), _ldap_info(root, ports, credentials))


def running_keycloak_connection(state_dir: Path | None = None) -> KeycloakConnection | None:
    """Admin connection settings for the local Keycloak when it runs, else None."""
    root = _resolve(state_dir)
    info = status(root).keycloak
    credentials = _read_credentials(root)
    if info is None or not info.running or credentials is None:
        return None
    return KeycloakConnection(
        url=info.url,
        auth_realm="master",
        client_id="admin-cli",
        username=credentials.admin_user,
        password=credentials.admin_password,
        verify=True,
    )


def running_ldap_connection(state_dir: Path | None = None) -> LdapConnection | None:
    """Root-DN connection settings for the local slapd when it runs, else None."""
    root = _resolve(state_dir)
    info = status(root).ldap
    credentials = _read_credentials(root)
    if info is None or not info.running or credentials is None:
        return None
    return LdapConnection(info.url, info.bind_dn, credentials.ldap_password, info.base_dn)


def export_lines(keycloak_connection: KeycloakConnection | None, ldap: LdapConnection | None) -> list[str]:
    """Shell `export` lines for the variables agent.settings reads; secrets are revealed here on purpose."""
    values: list[tuple[str, str]] = []
    if keycloak_connection is not None:
        password = keycloak_connection.password
        values += [
            ("KEYCLOAK_URL", keycloak_connection.url),
            ("KEYCLOAK_ADMIN_USER", keycloak_connection.username or ""),
            ("KEYCLOAK_ADMIN_PASSWORD", password.reveal() if password else ""),
        ]
    if ldap is not None:
        values += [
            ("LDAP_URL", ldap.url),
            ("LDAP_BIND_DN", ldap.bind_dn),
            ("LDAP_BIND_PASSWORD", ldap.bind_password.reveal()),
            ("LDAP_BASE_DN", ldap.base_dn),
        ]
    return [f"export {name}={shlex.quote(value)}" for name, value in values]


def choose_port(
    requested: int | None,
    recorded: int | None,
    *,
    taken: frozenset[int] = frozenset(),
    is_free: Callable[[int], bool] = processes.port_is_free,
    option: str = "the port option",
) -> int:
    """The requested port (which must be free), else the recorded one while free, else a new free port."""
    if requested is not None:
        if requested in taken or not is_free(requested):
            raise StackError(
                f"port {requested} on {processes.LOCALHOST} is in use",
                hint=f"choose another with {option}, or leave it out to pick a free port",
            )
        return requested
    if recorded is not None and recorded not in taken and is_free(recorded):
        return recorded
    return processes.free_port(exclude=taken)


# --- components ------------------------------------------------------------------------------------


def _up_ldap(root: Path, credentials: StackCredentials, requested: int | None, echo: Echo) -> None:
    ports = _load_ports(root)
    instance = _slapd(root, credentials)
    if instance.is_running():
        _refuse_port_change(requested, instance.port(), "slapd", "--ldap-port")
        echo(f"LDAP already running at ldap://{processes.LOCALHOST}:{instance.port()} (pid {instance.pid()})")
        return
    ensure_slapd_installed(echo)
    # Keycloak's recorded ports stay reserved for it, even while it is stopped.
    others = frozenset(port for port in (ports.keycloak_http, ports.keycloak_management) if port)
    port = choose_port(requested, ports.ldap, taken=others, option="--ldap-port")
    _save_ports(root, replace(ports, ldap=port))
    if not instance.is_loaded():
        ldif = processes.make_private_dir(instance.directory) / "demo.ldif"
        ldif.write_text(demo_ldif(LDAP_SUFFIX), encoding="utf-8")
        instance.load(ldif)
        echo(f"Loaded the demo directory ({len(PEOPLE)} people, {len(GROUPS)} groups, {len(DEPARTMENTS)} departments)")
    started = time.monotonic()
    instance.start(port)
    echo(f"LDAP ready in {time.monotonic() - started:.1f} s at ldap://{processes.LOCALHOST}:{port}")


def _up_keycloak(
    root: Path, credentials: StackCredentials, requested: int | None, timeout_seconds: float, echo: Echo
) -> None:
    ports = _load_ports(root)
    instance = _keycloak(root)
    if instance.is_running():
        _refuse_port_change(requested, ports.keycloak_http, "Keycloak", "--keycloak-port")
        echo(f"Keycloak already running at http://{processes.LOCALHOST}:{ports.keycloak_http} (pid {instance.pid()})")
        return
    java = find_java()
    echo(f"Using Java {java.version} from {java.home}")
    build = keycloak.ensure_build(paths.cache_dir(), java, echo)
    others = frozenset(port for port in (ports.ldap,) if port)
    http = choose_port(requested, ports.keycloak_http, taken=others, option="--keycloak-port")
    management = choose_port(None, ports.keycloak_management, taken=others | {http})
    chosen = KeycloakPorts(http=http, management=management)
    _save_ports(root, replace(ports, keycloak_http=http, keycloak_management=management))
    instance.prepare_home(build.home)
    started = time.monotonic()
    pid = instance.start(chosen, java, credentials.admin_user, credentials.admin_password)
    url = keycloak.urls(chosen)[0]
    echo(f"Starting Keycloak {keycloak.KEYCLOAK_VERSION} on {url} (log: {instance.log_path})")
    instance.wait_ready(chosen, pid, timeout_seconds)
    how = f"built in {build.build_seconds:.1f} s first" if build.built_now else "build cached"
    echo(f"Keycloak ready in {time.monotonic() - started:.1f} s ({how})")


def _refuse_port_change(requested: int | None, current: int | None, name: str, option: str) -> None:
    if requested is not None and requested != current:
        raise StackError(
            f"{name} already runs on port {current}, not {requested}",
            hint=f"run `idp-agent stack down` first to move it to {option} {requested}",
        )


def _keycloak_info(root: Path, ports: StackPorts, credentials: StackCredentials) -> KeycloakInfo | None:
    if ports.keycloak_http is None or ports.keycloak_management is None:
        return None
    instance = _keycloak(root)
    pid = instance.pid()
    url, console, health = keycloak.urls(KeycloakPorts(ports.keycloak_http, ports.keycloak_management))
    return KeycloakInfo(
        running=pid is not None,
        pid=pid,
        version=keycloak.KEYCLOAK_VERSION,
        url=url,
        admin_console_url=console,
        health_url=health,
        admin_user=credentials.admin_user,
        log_path=instance.log_path,
    )


def _ldap_info(root: Path, ports: StackPorts, credentials: StackCredentials) -> LdapInfo | None:
    if ports.ldap is None:
        return None
    instance = _slapd(root, credentials)
    pid = instance.pid()
    return LdapInfo(
        running=pid is not None,
        pid=pid,
        url=f"ldap://{processes.LOCALHOST}:{ports.ldap}",
        base_dn=instance.suffix,
        bind_dn=instance.root_dn,
        directory=instance.directory,
    )


# --- state files -----------------------------------------------------------------------------------


def _resolve(state_dir: Path | None) -> Path:
    return (state_dir or paths.state_dir()).expanduser().resolve()


def _keycloak(root: Path) -> KeycloakInstance:
    return KeycloakInstance(root / "keycloak")


def _slapd(root: Path, credentials: StackCredentials) -> SlapdInstance:
    return SlapdInstance(root / "ldap", password=credentials.ldap_password, suffix=LDAP_SUFFIX)


def _load_ports(root: Path) -> StackPorts:
    data = processes.read_json(root / STACK_FILE) or {}
    ports = data.get("ports", {})
    return StackPorts(
        keycloak_http=_int_or_none(ports.get("keycloak_http")),
        keycloak_management=_int_or_none(ports.get("keycloak_management")),
        ldap=_int_or_none(ports.get("ldap")),
    )


def _save_ports(root: Path, ports: StackPorts) -> None:
    processes.write_private_json(root / STACK_FILE, {"ports": _as_dict(ports)})


def _as_dict(ports: StackPorts) -> dict[str, Any]:
    return {"keycloak_http": ports.keycloak_http, "keycloak_management": ports.keycloak_management, "ldap": ports.ldap}


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _read_credentials(root: Path) -> StackCredentials | None:
    path = root / CREDENTIALS_FILE
    data = processes.read_json(path)
    if data is None:
        return None
    try:
        return StackCredentials(
            admin_user=str(data["keycloak_admin_user"]),
            admin_password=Secret(str(data["keycloak_admin_password"])),
            ldap_password=Secret(str(data["ldap_bind_password"])),
        )
    except KeyError as missing:
        raise StackError(f"{path} lacks {missing}", hint=f"restore it, or delete {root} to start afresh") from None


def _load_or_create_credentials(root: Path, env: Mapping[str, str]) -> StackCredentials:
    """The stored credentials; on first use, IDP_STACK_ADMIN_USER/PASSWORD(_FILE) or generated ones."""
    wanted_user = env.get(ADMIN_USER_ENV) or None
    wanted_password = read_secret(env, ADMIN_PASSWORD_ENV)
    stored = _read_credentials(root)
    if stored is not None:
        # Keycloak and slapd keep what they were created with: a new value here would silently not apply.
        differs = (wanted_user not in (None, stored.admin_user)) or (
            wanted_password is not None and wanted_password != stored.admin_password
        )
        if differs:
            raise StackError(
                f"{ADMIN_USER_ENV}/{ADMIN_PASSWORD_ENV} differ from the credentials this stack was created with",
                hint=f"unset them (the stack keeps {root / CREDENTIALS_FILE}), or stop the stack and delete {root}",
            )
        return stored
    credentials = StackCredentials(
        admin_user=wanted_user or DEFAULT_ADMIN_USER,
        admin_password=wanted_password or Secret(secrets.token_urlsafe(PASSWORD_BYTES)),
        ldap_password=wanted_password or Secret(secrets.token_urlsafe(PASSWORD_BYTES)),
    )
    processes.write_private_json(
        root / CREDENTIALS_FILE,
        {
            "keycloak_admin_user": credentials.admin_user,
            "keycloak_admin_password": credentials.admin_password.reveal(),
            "ldap_bind_password": credentials.ldap_password.reveal(),
        },
    )
    return credentials
