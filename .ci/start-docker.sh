#!/usr/bin/env bash
# Start a Docker engine and install bubblewrap for replisim's live world (CI, run as root).
#
# Idempotent: safe to run again; it installs only what is missing and starts dockerd only if
# `docker info` fails. Meant for the project's machine kind: Debian 12, root, cgroup v1
# (hybrid), ext4 root file system, no network except the package registries (so no image can
# ever be pulled; replisim builds its base image offline, see sim/hosts/docker_image.py).
#
# dockerd flags, as found on this machine kind (Docker 20.10.24 from Debian's docker.io):
#   * needed: none. The defaults work: storage driver overlay2 on ext4 (d_type ok), cgroup
#     driver cgroupfs on cgroup v1, iptables via the nf_tables backend, a dockerd-managed
#     containerd. Fallbacks kick in only if a check fails: `--iptables=false` when iptables
#     does not work, `--storage-driver=vfs` when overlay2 is unavailable.
#   * chosen for network safety (replisim never needs them otherwise):
#       --bridge=none        no default docker0 bridge, so no container can get an outbound
#                            NAT'd network by accident; replisim uses network_mode="none" or
#                            its own internal=True networks.
#       --ip-forward=false   do not turn the host into a router (dockerd would set
#                            net.ipv4.ip_forward=1).
#       --ip-masq=false      no MASQUERADE rules.
#       --dns=127.0.0.1      upstream for the embedded DNS server is loopback: a container on
#                            an internal network can never make dockerd forward a DNS query to
#                            the host's resolver (cf. CVE-2024-29018, not fixed in 20.10).
#       --userland-proxy=false  no docker-proxy processes (replisim publishes no ports).
#       --log-level=warn     the 20.10 daemon logs every gRPC state change at info.
#   Extra flags can be appended with DOCKERD_EXTRA_ARGS="...".
#
# Environment: DOCKERD_LOG (default /var/log/replisim-dockerd.log), DOCKER_WAIT_SECONDS
# (default 60).
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/replisim-dockerd.log}"
DOCKER_WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[start-docker] %s\n' "$*" >&2; }

if [[ "$(id -u)" != 0 ]]; then
    log "must run as root"
    exit 1
fi

# --- packages ---------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
# Live hosts: nsenter, setpriv, prlimit enter and limit local sandboxes; ps lists a
# container's processes (both run from the host's /usr).
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
command -v ps >/dev/null 2>&1 || missing+=(procps)
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    log "docker.io and bubblewrap already installed"
fi

# The docker CLI may come from elsewhere (a newer static client in /usr/local/bin is fine: it
# negotiates the daemon's API version, 1.41 for 20.10).
DOCKER="$(command -v docker || true)"
if [[ -z "$DOCKER" ]]; then
    log "no docker CLI found after install"
    exit 1
fi

# --- daemon -------------------------------------------------------------------------------
if "$DOCKER" info >/dev/null 2>&1; then
    log "dockerd already answers; not starting another one"
else
    args=(
        --bridge=none
        --ip-forward=false
        --ip-masq=false
        --dns=127.0.0.1
        --userland-proxy=false
        --log-level=warn
    )
    if ! iptables -L -n >/dev/null 2>&1; then
        log "iptables does not work here: starting dockerd with --iptables=false"
        args+=(--iptables=false)
    fi
    if ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then
        log "no overlay file system: using --storage-driver=vfs (slow, but works)"
        args+=(--storage-driver=vfs)
    fi
    # shellcheck disable=SC2206  # word splitting of the extra args is intended
    args+=(${DOCKERD_EXTRA_ARGS:-})
    # A stale pid file from a dead daemon makes dockerd refuse to start.
    if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    log "starting: dockerd ${args[*]} (log: $DOCKERD_LOG)"
    # setsid: own session and process group, so the daemon outlives this script even where
    # the caller kills the script's process group when the step ends.
    setsid nohup dockerd "${args[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    disown || true
fi

deadline=$((SECONDS + DOCKER_WAIT_SECONDS))
until "$DOCKER" info >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
        log "dockerd did not answer within ${DOCKER_WAIT_SECONDS}s; last log lines:"
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        exit 1
    fi
    sleep 1
done

# --- report ---------------------------------------------------------------------------------
"$DOCKER" version --format 'docker client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})'
"$DOCKER" info --format 'storage driver {{.Driver}}, cgroup driver {{.CgroupDriver}} v{{.CgroupVersion}}'
bwrap --version
