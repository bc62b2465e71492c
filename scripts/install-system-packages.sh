#!/usr/bin/env bash
# Install the database server binaries the test suite and benches start privately,
# and the browser the console's tests drive.
# Nothing here starts or configures a system service.
set -euo pipefail
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v mariadbd >/dev/null || command -v mysqld >/dev/null || missing+=(mariadb-server)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v nats-server >/dev/null || [[ -x /usr/sbin/nats-server ]] || missing+=(nats-server)
command -v chromium >/dev/null || missing+=(chromium)  # the console's browser tests (Playwright)
# a Java runtime for pyspark (the Spark curation engine and its tests)
command -v java >/dev/null || missing+=(default-jre-headless)
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps Debian from starting the services it installs.
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if ((created_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi
