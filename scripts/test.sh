#!/usr/bin/env bash
# Runs every test. Installs what the tests need first, so it works on a fresh machine.
# Every server the tests start listens on 127.0.0.1, port 0 (or a free port it was given).
set -euo pipefail
cd "$(dirname "$0")/.."

# mosquitto (tests/mosquitto.rs), nats-server (tests/nats.rs), nginx + nchan (tests/nchan.rs),
# pushpin + zurl (tests/pushpin.rs, its origin is nginx) and tshark
# (scripts/verify-capture.sh), from Debian/Ubuntu packages. Installing never starts a system
# service (policy-rc.d says no for the duration): the tests start their own instances on
# loopback.
missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v nginx >/dev/null || missing+=(nginx)
[[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]] || missing+=(libnginx-mod-nchan)
command -v pushpin >/dev/null || missing+=(pushpin)
command -v zurl >/dev/null || missing+=(zurl)
command -v tshark >/dev/null || missing+=(tshark)
# iptables (tests/link.rs: loss, the NFQUEUE delay line and faults inside the link's namespace)
command -v iptables-legacy >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
# The TLS listeners of scripts/targets/{nchan,mosquitto}.sh get their certificates from it.
command -v openssl >/dev/null || missing+=(openssl)
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}"
        policy=/usr/sbin/policy-rc.d
        own_policy=false
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod +x "$policy"
            own_policy=true
        fi
        status=0
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } ||
            status=$?
        if $own_policy; then rm -f "$policy"; fi
        [[ $status -eq 0 ]] || { echo "installing ${missing[*]} failed" >&2; exit "$status"; }
    else
        echo "warning: ${missing[*]} missing and not root: the tests that need them will fail." >&2
        echo "  as root: apt-get install -y mosquitto nats-server nginx libnginx-mod-nchan pushpin zurl tshark iptables iproute2 openssl" >&2
    fi
fi

# The Kubernetes manifests (deploy/kubernetes/), checked against the Kubernetes schemas that
# PyPI's kubernetes-validate ships: no cluster runs here.
command -v kubernetes-validate >/dev/null || python3 -m pip install -q kubernetes-validate
echo "== kubernetes-validate deploy/kubernetes"
kubernetes-validate --strict --quiet deploy/kubernetes/target.yaml \
    deploy/kubernetes/shards-service.yaml deploy/kubernetes/shards-job.yaml

cargo test --locked --all-targets --no-fail-fast "$@"
