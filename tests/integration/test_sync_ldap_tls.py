"""S22: LDAPS and StartTLS against a real slapd with a throwaway CA, and HTTPS for the HR sources.

The right CA works; an untrusted CA, the system CAs or a wrong host name are refused with a clear problem,
and nothing falls back to plain text: a recorder between the source and slapd proves the password never
crosses the wire in clear.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agent.errors import SourceUnavailable
from agent.secrets import Secret
from agent.stack.processes import free_port
from agent.stack.slapd import SlapdInstance, SlapdTls
from agent.sync.model import Found, NotFound
from agent.sync.sources import build_source, parse_source_config
from agent.sync.sources.http_json import HttpJsonSource
from agent.sync.sources.ldap_source import LdapSource
from tests.harness.certificates import TestPki, write_test_pki
from tests.harness.hr_server import HrServer, people
from tests.harness.ldap_directory import SUFFIX, directory_ldif, numbered_people

PEOPLE = 30
BUFFER_BYTES = 65536


@dataclass(frozen=True)
class TlsDirectory:
    instance: SlapdInstance
    port: int
    ldaps_port: int
    reader_password: Secret
    pki: TestPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    # Valid for 127.0.0.1 and ldap.test.invalid only: "localhost" is the wrong host name.
    return write_test_pki(tmp_path_factory.mktemp("pki"), dns_names=["ldap.test.invalid"], ip_addresses=["127.0.0.1"])


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[TlsDirectory]:
    folder = tmp_path_factory.mktemp("tls-slapd")
    tls = SlapdTls(ca_file=pki.ca_file, cert_file=pki.cert_file, key_file=pki.key_file)
    instance = SlapdInstance(folder / "slapd", password=Secret(secrets.token_urlsafe(18)), suffix=SUFFIX, tls=tls)
    reader_password = Secret(secrets.token_urlsafe(18))
    ldif = folder / "directory.ldif"
    ldif.write_text(directory_ldif(numbered_people(PEOPLE), reader_password), encoding="utf-8")
    instance.load(ldif)
    port, ldaps_port = free_port(), free_port()
    instance.start(port, ldaps_port=ldaps_port)
    try:
        yield TlsDirectory(instance, port, ldaps_port, reader_password, pki)
    finally:
        instance.stop()


class Recorder:
    """A TCP forwarder on 127.0.0.1 that keeps every byte the client sent (to look for a clear password)."""

    def __init__(self, target_port: int) -> None:
        self.sent = bytearray()
        self._target_port = target_port
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        try:
            while chunk := source.recv(BUFFER_BYTES):
                if record:
                    with self._lock:
                        self.sent += chunk
                target.sendall(chunk)
        except OSError:
            pass  # either side hung up
        finally:
            for end in (source, target):
                end.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def recorder(directory: TlsDirectory) -> Iterator[Recorder]:
    made = Recorder(directory.port)
    yield made
    made.close()


def _ldap(directory: TlsDirectory, url: str, **overrides: Any) -> LdapSource:
    settings: dict[str, Any] = {
        "type": "ldap",
        "name": "corp-ldap",
        "url": url,
        "bind_dn": f"cn=reader,{SUFFIX}",
        "bind_password": directory.reader_password,
        "base_dn": f"ou=people,{SUFFIX}",
        "ca_file": str(directory.pki.ca_file),
        "connect_timeout_seconds": 2,
        "receive_timeout_seconds": 5,
        **overrides,
    }
    source = build_source(parse_source_config(settings))
    assert isinstance(source, LdapSource)
    return source


def test_starttls_with_the_right_ca_reads_everyone_and_the_password_never_goes_in_clear(
    directory: TlsDirectory, recorder: Recorder
) -> None:
    source = _ldap(directory, f"ldap://127.0.0.1:{recorder.port}")  # ldap:// means StartTLS unless told otherwise

    read = source.read()

    assert read.complete, read.problem
    assert len(read.records) == PEOPLE
    assert recorder.sent, "the recorder saw no traffic"
    assert directory.reader_password.reveal().encode() not in recorder.sent


def test_ldaps_with_the_right_ca_reads_everyone(directory: TlsDirectory) -> None:
    source = _ldap(directory, f"ldaps://127.0.0.1:{directory.ldaps_port}")

    read = source.read()

    assert read.complete, read.problem
    assert len(read.records) == PEOPLE
    assert source.lookup("user00003") == NotFound()  # the id is entryUUID, not uid
    found = _ldap(directory, f"ldaps://127.0.0.1:{directory.ldaps_port}", id_attribute="uid").lookup("user00003")
    assert isinstance(found, Found) and found.record.get("uid") == "user00003"


def test_plain_ldap_written_out_does_send_the_password_in_clear(directory: TlsDirectory, recorder: Recorder) -> None:
    # The control for the test above: the recorder does see a bind password when there is no TLS.
    source = _ldap(directory, f"ldap://127.0.0.1:{recorder.port}", tls="none", ca_file=None)

    assert source.read().complete
    assert directory.reader_password.reveal().encode() in recorder.sent


REFUSALS = [
    pytest.param("start-tls", "untrusted", "certificate verify failed", id="starttls-untrusted-ca"),
    pytest.param("start-tls", "system", "certificate verify failed", id="starttls-system-cas"),
    pytest.param("start-tls", "wrong-host", "does not match the server's host name", id="starttls-wrong-host"),
    pytest.param("ldaps", "untrusted", "certificate verify failed", id="ldaps-untrusted-ca"),
    pytest.param("ldaps", "system", "certificate verify failed", id="ldaps-system-cas"),
    pytest.param("ldaps", "wrong-host", "does not match the server's host name", id="ldaps-wrong-host"),
]


@pytest.mark.parametrize(("mode", "trouble", "reason"), REFUSALS)
def test_an_unverifiable_server_is_refused_without_falling_back_to_plain(
    directory: TlsDirectory, recorder: Recorder, mode: str, trouble: str, reason: str
) -> None:
    host = "localhost" if trouble == "wrong-host" else "127.0.0.1"
    url = f"ldap://{host}:{recorder.port}" if mode == "start-tls" else f"ldaps://{host}:{directory.ldaps_port}"
    ca_file = {"untrusted": str(directory.pki.untrusted_ca_file), "system": None}.get(
        trouble, str(directory.pki.ca_file)
    )
    source = _ldap(directory, url, ca_file=ca_file)

    read = source.read()
    with pytest.raises(SourceUnavailable) as raised:
        source.lookup("user00003")

    assert not read.complete
    assert read.records == ()
    assert "failed, nothing was sent in plain text" in read.problem
    assert reason in read.problem
    assert reason in str(raised.value)
    assert directory.reader_password.reveal().encode() not in recorder.sent
    assert directory.reader_password.reveal() not in read.problem


# --- HTTPS for the HR sources --------------------------------------------------------------------------------


@pytest.fixture
def https_hr(pki: TestPki) -> Iterator[HrServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    with HrServer(people(PEOPLE), tls=context) as server:
        yield server


def _http(url: str, **overrides: Any) -> HttpJsonSource:
    settings = {
        "type": "http-json",
        "name": "hr-api",
        "url": url,
        "records_path": "data.items",
        "paging": {"mode": "page", "size": 10},
        "timeout_seconds": 2,
        "backoff_seconds": 0.01,
        **overrides,
    }
    source = build_source(parse_source_config(settings))
    assert isinstance(source, HttpJsonSource)
    return source


def test_https_with_the_right_ca(https_hr: HrServer, pki: TestPki) -> None:
    read = _http(f"https://127.0.0.1:{https_hr.port}/api/page/people", ca_file=str(pki.ca_file)).read()

    assert read.complete, read.problem
    assert len(read.records) == PEOPLE


@pytest.mark.parametrize(
    ("host", "ca", "reason"),
    [
        pytest.param("127.0.0.1", "untrusted", "TLS: certificate verify failed", id="untrusted-ca"),
        pytest.param("127.0.0.1", "system", "TLS: certificate verify failed", id="system-cas"),
        pytest.param("localhost", "right", "TLS: certificate verify failed: Hostname mismatch", id="wrong-host"),
    ],
)
def test_https_that_cannot_be_verified_is_refused_at_once(
    https_hr: HrServer, pki: TestPki, host: str, ca: str, reason: str
) -> None:
    ca_file = {"untrusted": str(pki.untrusted_ca_file), "right": str(pki.ca_file)}.get(ca)
    source = _http(f"https://{host}:{https_hr.port}/api/page/people", ca_file=ca_file, max_attempts=3)

    read = source.read()

    assert not read.complete
    assert read.problem.startswith(f"page 1: GET https://{host}:{https_hr.port}/api/page/people: {reason}")
    assert "after" not in read.problem  # a certificate problem is not retried
    assert https_hr.state.seen == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_verification_is_off_only_when_written_out(https_hr: HrServer) -> None:
    read = _http(f"https://127.0.0.1:{https_hr.port}/api/page/people", tls_verify=False).read()

    assert read.complete, read.problem


def test_a_ca_file_with_verification_off_is_a_config_error(pki: TestPki) -> None:
    with pytest.raises(ValueError, match="ca_file is set but tls_verify is false"):
        _http("https://127.0.0.1:1/api", tls_verify=False, ca_file=str(pki.ca_file))
