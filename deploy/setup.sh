#!/bin/sh
# The set-up of a host that runs the project from deploy/ (systemd, cron), as root, from the checkout:
#
#   deploy/setup.sh [--root DIR] [--cron-dir DIR] [--cron-user USER] [--wheel FILE [--extras LIST]]
#
# 1. the system group and user `vvv` (no login, no home), which the units and the crontab line run as;
# 2. the cron's data directory (default /var/lib/viralvidvault, the folder holding cron.db) given to group vvv:
#    setgid (files made there stay the group's), group-writable, and cron.db with it; --cron-user adds the cron's
#    own user to the group, so the cron's hook and `vvv publish` share the database and its outbox;
# 3. /var/log/viralvidvault, the crontab line's log, owned by vvv;
# 4. /etc/viralvidvault with the environment file and client.properties (deploy/env, deploy/client.properties;
#    an existing one is kept: edit its broker, names and secret), readable by group vvv only;
# 5. the venv at /opt/viralvidvault (`python3 -m venv`), with the wheel and its extras when --wheel is given
#    (e.g. --extras consumers), and bin/vvv-member, the systemd template's launcher;
# 6. the systemd units and the crontab line, in /etc/systemd/system and /etc/cron.d.
#
# Every step is idempotent (run it again after an upgrade). --root DIR does it all under DIR instead of / (the
# test runs it in a scratch root, with DIR/etc/passwd and group made first).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root="" cron_dir=/var/lib/viralvidvault cron_user="" wheel="" extras=""
while [ $# -gt 0 ]; do
    case $1 in
        --root) root=$2 ;;
        --cron-dir) cron_dir=$2 ;;
        --cron-user) cron_user=$2 ;;
        --wheel) wheel=$2 ;;
        --extras) extras=$2 ;;
        *) echo "setup.sh: unknown option $1 (see the comment at its top)" >&2; exit 2 ;;
    esac
    shift 2
done
prefix=${root:+--prefix $root}
say() { echo "setup: $*"; }

# 1. the group and user (ids read back from the files they went into: --root has its own)
grep -q '^vvv:' "$root/etc/group" || groupadd $prefix --system vvv
grep -q '^vvv:' "$root/etc/passwd" ||
    useradd $prefix --system --gid vvv --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vvv
uid=$(grep '^vvv:' "$root/etc/passwd" | cut -d: -f3)
gid=$(grep '^vvv:' "$root/etc/group" | cut -d: -f3)
say "user vvv ($uid), group vvv ($gid)"
if [ -n "$cron_user" ]; then
    usermod $prefix --append --groups vvv "$cron_user"
    say "$cron_user (the cron's user) is in group vvv"
fi

# 2. the cron's data directory: its owner stays the cron's user, its group is vvv
mkdir -p "$root$cron_dir"
chgrp "$gid" "$root$cron_dir"
chmod 2770 "$root$cron_dir"
for file in "$root$cron_dir"/cron.db "$root$cron_dir"/cron.db-wal "$root$cron_dir"/cron.db-shm; do
    if [ -e "$file" ]; then chgrp "$gid" "$file" && chmod g+rw "$file"; fi
done
say "$cron_dir: group vvv, mode 2770 (cron.db group-writable)"

# 3. the log folder
mkdir -p "$root/var/log/viralvidvault"
chown "$uid:$gid" "$root/var/log/viralvidvault"
chmod 0750 "$root/var/log/viralvidvault"
say "/var/log/viralvidvault: vvv's"

# 4. the configuration, never overwritten
mkdir -p "$root/etc/viralvidvault"
chgrp "$gid" "$root/etc/viralvidvault"
chmod 0750 "$root/etc/viralvidvault"
for name in env client.properties; do
    target="$root/etc/viralvidvault/$name"
    if [ ! -e "$target" ]; then cp "$here/$name" "$target"; fi
    chgrp "$gid" "$target"
    chmod 0640 "$target"
done
say "/etc/viralvidvault: env and client.properties (group vvv, 0640): set the broker, names and secret there"

# 5. the venv, the wheel, the member launcher
venv="$root/opt/viralvidvault"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if [ -n "$wheel" ]; then
    "$venv/bin/pip" install --quiet "$wheel${extras:+[$extras]}"
fi
install -m 0755 "$here/vvv-member" "$venv/bin/vvv-member"
say "/opt/viralvidvault: the venv${wheel:+ with $(basename "$wheel")${extras:+[$extras]}}"

# 6. the units and the crontab line
mkdir -p "$root/etc/systemd/system" "$root/etc/cron.d"
install -m 0644 "$here/vvv-consume@.service" "$here/vvv-sink.service" "$root/etc/systemd/system/"
install -m 0644 "$here/crontab" "$root/etc/cron.d/viralvidvault"
say "units in /etc/systemd/system, the crontab line in /etc/cron.d/viralvidvault"
say "then: systemctl daemon-reload && systemctl enable --now vvv-consume@scoring-1 vvv-consume@thumbnails-1 ..."
