#!/bin/sh
# Generates slapd.conf from the environment, loads /seed/*.ldif once with slapadd, runs slapd in the foreground.
set -eu
: "${LDAP_SUFFIX:=dc=example,dc=org}"
: "${LDAP_ADMIN_PASSWORD:?set LDAP_ADMIN_PASSWORD (or LDAP_ADMIN_PASSWORD_FILE)}"
if [ -n "${LDAP_ADMIN_PASSWORD_FILE:-}" ]; then LDAP_ADMIN_PASSWORD=$(cat "$LDAP_ADMIN_PASSWORD_FILE"); fi
mkdir -p /var/lib/ldap/db /run/slapd
HASH=$(slappasswd -s "$LDAP_ADMIN_PASSWORD")
cat > /etc/ldap/idp-slapd.conf <<CONF
include   /etc/ldap/schema/core.schema
include   /etc/ldap/schema/cosine.schema
include   /etc/ldap/schema/inetorgperson.schema
include   /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile   /run/slapd/slapd.pid
sizelimit size.soft=1000 size.hard=unlimited size.pr=1000 size.prtotal=unlimited
database  mdb
maxsize   1073741824
suffix    "$LDAP_SUFFIX"
rootdn    "cn=admin,$LDAP_SUFFIX"
rootpw    $HASH
directory /var/lib/ldap/db
index     objectClass eq
index     uid,mail eq,sub
index     entryUUID eq
index     member,memberUid eq
CONF
if [ ! -f /var/lib/ldap/db/data.mdb ] && ls /seed/*.ldif >/dev/null 2>&1; then
  for f in /seed/*.ldif; do slapadd -q -f /etc/ldap/idp-slapd.conf -l "$f"; done
fi
exec slapd -d 0 -f /etc/ldap/idp-slapd.conf -h "ldap://0.0.0.0:389/"
