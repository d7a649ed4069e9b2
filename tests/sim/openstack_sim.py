#!/usr/bin/env python3
"""Stateful OpenStack simulator for the OpenStack driver's tests: Keystone v3
(/identity), Nova v2.1 (/compute/v2.1), Neutron v2.0 (/network) and Glance v2
(/image) on one port, plus unauthenticated /_sim/* inspection and knobs.

  openstack_sim.py --state-dir DIR [--port 0] [--bind 127.0.0.1]
                   [--tls-cert F --tls-key F] [--config FILE.json] [--verbose]

Writes the base URL to DIR/url (atomically; the Keystone auth URL is
URL/identity/v3), prints "openstack-sim listening on URL", and on
SIGTERM/SIGINT kills every boot process it started and exits 0."""

import argparse
import json
import os
import signal
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import os_config  # noqa: E402
import os_glance  # noqa: E402
import os_keystone  # noqa: E402
import os_neutron  # noqa: E402
import os_nova  # noqa: E402
from os_http import Service, SimServer, serve_in_thread  # noqa: E402
from os_state import State  # noqa: E402
from os_util import atomic_write  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description="OpenStack API simulator")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--config")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


def load_config(path):
    cfg = os_config.default_config()
    if path:
        with open(path) as f:
            cfg = os_config.merged(cfg, json.load(f))
    return cfg


def tls_context(args):
    if not args.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    return ctx


def public_url(args, server, tls):
    host = args.bind if args.bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d" % ("https" if tls else "http", host, server.server_address[1])


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        sys.stderr.write("openstack-sim: bad --config: %s\n" % exc)
        return 2
    state = State(args.state_dir, config)
    tls = tls_context(args)
    services = [os_keystone.SERVICE, os_nova.SERVICE, os_neutron.SERVICE, os_glance.SERVICE]
    server = SimServer((args.bind, args.port), state, services, args.verbose, tls)
    state.url = Service.url = public_url(args, server, tls)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    state.start_ticker()
    serve_in_thread(server)
    atomic_write(os.path.join(args.state_dir, "url"), state.url)
    print("openstack-sim listening on %s" % state.url, flush=True)
    while not stop.wait(0.5):
        pass
    state.stop()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
