#!/bin/sh
# The image's entry point (docker-compose.yml): a cron database named with --db is checked first, as the
# image's user sees it, so that a bind mount with the wrong owner or mode is one line naming the user and
# what to change, not a member that exits and restarts in a loop; then `vvv` with the same arguments.
set -eu
db="" previous=""
for arg in "$@"; do
    if [ "$previous" = "--db" ]; then db=$arg; fi
    previous=$arg
done
if [ -n "$db" ]; then
    folder=$(dirname "$db")
    user="uid $(id -u), gid $(id -g), groups $(id -G | tr ' ' ',')"
    fix="on the host: chgrp GROUP DIR DIR/cron.db; chmod 2770 DIR; chmod 660 DIR/cron.db, with GROUP's gid in VIRALVIDVAULT_CRON_GID (the README's compose section)"
    missing="vvv: error: $db does not exist ($user): mount the cron's data directory, the folder holding cron.db, at $folder (VIRALVIDVAULT_CRON_DIR)"
    refused="vvv: error: $db: $user cannot read and write it and create files beside it (SQLite's -wal and -shm): $fix"
    if [ ! -d "$folder" ]; then
        echo "$missing" >&2
        exit 1
    fi
    if [ ! -x "$folder" ] || [ ! -w "$folder" ]; then
        echo "$refused" >&2
        exit 1
    fi
    if [ ! -f "$db" ]; then
        echo "$missing" >&2
        exit 1
    fi
    if [ ! -r "$db" ] || [ ! -w "$db" ]; then
        echo "$refused" >&2
        exit 1
    fi
fi
exec vvv "$@"
