"""A throwaway OpenLDAP directory: Debian's slapd run unprivileged on 127.0.0.1 from a generated slapd.conf.

Used by `idp-agent stack` for the demo directory and by the test harness for generated ones.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPException

from agent.errors import StackError
from agent.secrets import Secret
from agent.settings import LdapConnection
from agent.stack import processes

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
DEFAULT_SUFFIX = "dc=example,dc=org"
MDB_MAXSIZE_BYTES = 1 << 30
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
BIND_TIMEOUT_SECONDS = 2  # ldap3 packs it into a C struct: it must be an int
SSHA_SALT_BYTES = 8
INSTALL_COMMAND = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q slapd ldap-utils"
INDEXES = ("objectClass eq", "uid,mail eq,sub", "entryUUID eq", "member,memberUid eq")
_URL_IN_ARGS = re.compile(r"ldap://127\.0\.0\.1:(\d+)/")


@dataclass(frozen=True)
class SizeLimits:
    """slapd's `sizelimit`: None means unlimited. Tests lower `soft` to exercise paging.

    The root DN is exempt from every limit: bind as another DN (or anonymously) to see them apply.
    """

    soft: int | None = 1000
    hard: int | None = None
    paged: int | None = 1000
    paged_total: int | None = None

    def directive(self) -> str:
        def value(limit: int | None) -> str:
            return "unlimited" if limit is None else str(limit)

        return (
            f"sizelimit size.soft={value(self.soft)} size.hard={value(self.hard)} "
            f"size.pr={value(self.paged)} size.prtotal={value(self.paged_total)}"
        )


@dataclass(frozen=True)
class SlapdTls:
    """Certificate files for StartTLS and LDAPS (PEM; the key readable by the user slapd runs as)."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def directives(self) -> list[str]:
        return [
            f"TLSCACertificateFile {self.ca_file}",
            f"TLSCertificateFile {self.cert_file}",
            f"TLSCertificateKeyFile {self.key_file}",
        ]


def ssha(password: str, salt: bytes | None = None) -> str:
    """An `{SSHA}` userPassword/rootpw value, as `slappasswd` makes it (salted SHA-1, slapd's default)."""
    salt = os.urandom(SSHA_SALT_BYTES) if salt is None else salt
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def render_slapd_conf(
    directory: Path,
    *,
    suffix: str,
    root_dn: str,
    root_pw_hash: str,
    limits: SizeLimits,
    maxsize_bytes: int = MDB_MAXSIZE_BYTES,
    tls: SlapdTls | None = None,
    extra_indexes: Sequence[str] = (),
) -> str:
    """The slapd.conf text for a directory whose pid, args and database live under `directory`."""
    lines = [f"include {SCHEMA_DIR / name}.schema" for name in SCHEMAS]
    lines += [
        f"modulepath {MODULE_DIR}",
        "moduleload back_mdb",
        f"pidfile {directory / 'slapd.pid'}",
        f"argsfile {directory / 'slapd.args'}",
        limits.directive(),
        *(tls.directives() if tls is not None else []),
        "",
        "database mdb",
        f"maxsize {maxsize_bytes}",
        f'suffix "{suffix}"',
        f'rootdn "{root_dn}"',
        f"rootpw {root_pw_hash}",
        f"directory {directory / 'db'}",
    ]
    lines += [f"index {index}" for index in (*INDEXES, *extra_indexes)]
    return "\n".join(lines) + "\n"


def ensure_slapd_installed(echo: Callable[[str], None]) -> None:
    """Install slapd and ldap-utils with apt when slapd is missing (root only; otherwise say how)."""
    if SLAPD.exists() and SLAPADD.exists():
        return
    if os.geteuid() != 0:
        raise StackError(
            "OpenLDAP's slapd is not installed", hint=f"run: sudo sh -c 'apt-get update && {INSTALL_COMMAND}'"
        )
    echo("Installing slapd and ldap-utils with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "slapd", "ldap-utils"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise StackError(
                f"`{' '.join(command)}` failed:\n{(done.stdout + done.stderr)[-2000:]}",
                hint=f"install them by hand: {INSTALL_COMMAND}",
            )


class SlapdInstance:
    """One slapd with its config, database, pid and args files under `directory`.

    Typical use: `SlapdInstance(dir, password=Secret(pw)).load(ldif)`, then `.start(port)`, `.stop()`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        password: Secret,
        suffix: str = DEFAULT_SUFFIX,
        limits: SizeLimits | None = None,
        tls: SlapdTls | None = None,
        extra_indexes: Sequence[str] = (),
    ) -> None:
        self.directory = directory.resolve()
        self.extra_indexes = tuple(extra_indexes)  # e.g. "employeeNumber eq": the sync's id attribute
        self.suffix = suffix
        self.root_dn = f"cn=admin,{suffix}"
        self.password = password
        self.limits = limits or SizeLimits()
        self.tls = tls
        self.conf_path = self.directory / "slapd.conf"
        self.pid_path = self.directory / "slapd.pid"
        self.args_path = self.directory / "slapd.args"
        self.db_dir = self.directory / "db"
        self.log_path = self.directory / "slapd.log"

    def write_config(self) -> Path:
        """(Re)write slapd.conf, mode 0600 as it holds the rootpw hash."""
        processes.make_private_dir(self.directory)
        self.db_dir.mkdir(exist_ok=True, mode=processes.PRIVATE_DIR_MODE)
        text = render_slapd_conf(
            self.directory,
            suffix=self.suffix,
            root_dn=self.root_dn,
            root_pw_hash=ssha(self.password.reveal()),
            limits=self.limits,
            tls=self.tls,
            extra_indexes=self.extra_indexes,
        )
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, processes.PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return self.conf_path

    def is_loaded(self) -> bool:
        """True when the database holds data (slapadd or a previous run)."""
        return (self.db_dir / "data.mdb").is_file()

    def load(self, ldif_path: Path) -> None:
        """Bulk-load an LDIF file with `slapadd -q` (slapd must not be running)."""
        if self.is_running():
            raise StackError(f"cannot slapadd into {self.directory}: slapd is running", hint="stop it first")
        self.write_config()
        done = subprocess.run(
            [str(SLAPADD), "-q", "-f", str(self.conf_path), "-l", str(ldif_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(
                f"slapadd could not load {ldif_path}:\n{(done.stdout + done.stderr)[-2000:]}",
                hint="fix the LDIF (schema, parent entries before children) and load again",
            )

    def start(
        self, port: int, *, timeout_seconds: float = START_TIMEOUT_SECONDS, ldaps_port: int | None = None
    ) -> None:
        """Start slapd on 127.0.0.1:port (it daemonises) and wait until the root DN can bind.

        With `ldaps_port` (and `tls` set) it also listens for LDAPS there; StartTLS works on `port` with `tls`.
        """
        if self.is_running():
            raise StackError(f"slapd already runs from {self.directory}", hint="stop it first")
        self.write_config()
        self.pid_path.unlink(missing_ok=True)
        url = f"ldap://{processes.LOCALHOST}:{port}"
        listeners = f"{url}/"
        if ldaps_port is not None:
            if self.tls is None:
                raise StackError("an LDAPS port needs certificates", hint="pass tls=SlapdTls(...)")
            listeners += f" ldaps://{processes.LOCALHOST}:{ldaps_port}/"
        with self.log_path.open("w", encoding="utf-8") as log:
            done = subprocess.run(
                [str(SLAPD), "-f", str(self.conf_path), "-h", listeners],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            raise StackError(
                f"slapd did not start on {url} (exit {done.returncode}):\n{processes.tail(self.log_path)}",
                hint=f"is port {port} taken? `ss -ltnp | grep :{port}`",
            )
        outcome = processes.wait_until(
            lambda: self._can_bind(url), timeout_seconds=timeout_seconds, give_up=lambda: not self.is_running()
        )
        if outcome != "ready":
            self.stop()
            raise StackError(
                f"slapd on {url} did not accept a bind within {timeout_seconds:.0f} s",
                hint=f"run `{SLAPD} -d 256 -f {self.conf_path} -h {url}/` to see why",
            )

    def pid(self) -> int | None:
        """The pid of our running slapd, or None."""
        pid = processes.read_pid(self.pid_path)
        if pid is not None and processes.is_our_process(pid, "slapd", str(self.conf_path)):
            return pid
        return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def port(self) -> int | None:
        """The port our running slapd listens on (from its args file), or None."""
        if not self.is_running():
            return None
        try:
            found = _URL_IN_ARGS.search(self.args_path.read_text(encoding="utf-8"))
        except OSError:
            return None
        return int(found[1]) if found else None

    def stop(self, *, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> bool:
        """SIGTERM our slapd (SIGKILL after the timeout); False when it was not running."""
        pid = self.pid()
        if pid is not None:
            processes.stop_process(pid, timeout_seconds=timeout_seconds)
        self.pid_path.unlink(missing_ok=True)
        return pid is not None

    def connection(self, port: int | None = None) -> LdapConnection:
        """Connection settings for the root DN (port: the running one unless given)."""
        port = port or self.port()
        if port is None:
            raise StackError(f"slapd from {self.directory} is not running", hint="start it first")
        return LdapConnection(
            url=f"ldap://{processes.LOCALHOST}:{port}",
            bind_dn=self.root_dn,
            bind_password=self.password,
            base_dn=self.suffix,
        )

    def _can_bind(self, url: str) -> bool:
        server = ldap3.Server(url, connect_timeout=BIND_TIMEOUT_SECONDS)
        try:
            connection = ldap3.Connection(
                server,
                user=self.root_dn,
                password=self.password.reveal(),
                receive_timeout=BIND_TIMEOUT_SECONDS,
                raise_exceptions=True,
            )
            connection.bind()
        except LDAPException:
            return False
        connection.unbind()
        return True
