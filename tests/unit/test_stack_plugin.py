"""The plugin pack's build steps that need no Keycloak: the source digest, the jar's layout and bytes, and
finding javac (with small fake JDK homes). Compiling against a real Keycloak home is proved by every
integration session: the test stack's Keycloak is built with the pack (tests/integration/test_review_plugin.py)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from agent.errors import StackError
from agent.stack import plugin
from agent.stack.java import JavaRuntime

pytestmark = pytest.mark.unit


def copy_sources(tmp_path: Path) -> Path:
    target = tmp_path / "keycloak"
    shutil.copytree(plugin.PLUGIN_SOURCE / "src", target / "src")
    return target


def test_the_repositorys_sources_hold_the_provider_and_its_registration() -> None:
    names = {path.name for path in plugin.source_files()}
    assert "AccessResource.java" in names
    assert "org.keycloak.services.resource.RealmResourceProviderFactory" in names


def test_the_digest_follows_every_source_byte_and_name(tmp_path: Path) -> None:
    source = copy_sources(tmp_path)
    first = plugin.source_digest(source)
    assert plugin.source_digest(source) == first == plugin.source_digest(plugin.PLUGIN_SOURCE)
    java = next(path for path in source.rglob("AccessResource.java"))
    java.write_text(java.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    changed = plugin.source_digest(source)
    assert changed != first
    java.rename(java.with_name("Renamed.java"))
    assert plugin.source_digest(source) not in {first, changed}


def test_missing_sources_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="sources are not in"):
        plugin.source_digest(tmp_path)


def test_the_jar_has_its_manifest_first_and_the_same_bytes_each_time(tmp_path: Path) -> None:
    (tmp_path / "B.class").write_bytes(b"\xca\xfe\xba\xbe b")
    (tmp_path / "A.class").write_bytes(b"\xca\xfe\xba\xbe a")
    entries = {"org/x/B.class": tmp_path / "B.class", "org/x/A.class": tmp_path / "A.class"}
    first, second = tmp_path / "one.jar", tmp_path / "two.jar"
    plugin.write_jar(first, entries)
    plugin.write_jar(second, dict(reversed(list(entries.items()))))
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as jar:
        assert jar.namelist() == ["META-INF/MANIFEST.MF", "org/x/A.class", "org/x/B.class"]
        assert jar.read("org/x/B.class") == b"\xca\xfe\xba\xbe b"
    assert not list(tmp_path.glob("*.partial"))


def fake_home(root: Path, name: str, *, javac: bool) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15' >&2\n", encoding="utf-8")
    java.chmod(0o755)
    if javac:
        (home / "bin" / "javac").write_text("#!/bin/sh\n", encoding="utf-8")
        (home / "bin" / "javac").chmod(0o755)
    return home


def test_javac_comes_from_the_runtime_when_it_is_a_jdk(tmp_path: Path) -> None:
    jdk = fake_home(tmp_path, "jdk", javac=True)
    runtime = JavaRuntime(home=jdk, version="17.0.15", major=17)
    assert plugin.find_javac(runtime, env={"PATH": ""}, jvm_root=tmp_path / "none") == jdk / "bin" / "javac"


def test_javac_comes_from_another_jdk_when_the_runtime_has_none(tmp_path: Path) -> None:
    jre = fake_home(tmp_path, "jre", javac=False)
    jdk = fake_home(tmp_path / "jvm", "jdk-17", javac=True)
    runtime = JavaRuntime(home=jre, version="17.0.15", major=17)
    assert plugin.find_javac(runtime, env={"PATH": ""}, jvm_root=tmp_path / "jvm") == jdk / "bin" / "javac"


def test_no_jdk_is_a_clear_error_with_the_package_to_install(tmp_path: Path) -> None:
    jre = fake_home(tmp_path, "jre", javac=False)
    runtime = JavaRuntime(home=jre, version="17.0.15", major=17)
    with pytest.raises(StackError, match="no JDK found") as raised:
        plugin.find_javac(runtime, env={"PATH": ""}, jvm_root=tmp_path / "none")
    assert "openjdk-17-jdk-headless" in (raised.value.hint or "")
