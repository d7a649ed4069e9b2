"""In-memory state of the OpenStack simulator: config, tokens, compute,
network and image resources, statistics, and the ~50 ms ticker thread that
advances asynchronous transitions. All access happens under State.lock."""

import random
import threading
import time

import os_config
import os_lifecycle
import os_netmodel
from os_boot import BootManager

TICK_S = 0.05


class State:
    def __init__(self, state_dir, base_config):
        self.lock = threading.RLock()
        self.state_dir = state_dir
        self.base_config = base_config
        self.url = ""
        self.boot = BootManager(state_dir)
        self._stop = threading.Event()
        self.reset()

    # ----- lifecycle of the whole state -------------------------------------------------
    def reset(self):
        """Back to the startup config with no resources (POST /_sim/reset)."""
        with self.lock:
            if hasattr(self, "servers"):
                self.boot.kill_all()
            self.config = os_config.normalise(self.base_config)
            self.seed_rngs()
            self.tokens = {}
            self.servers = {}
            self.keypairs = {}
            self.networks, self.subnets, self.ports = {}, {}, {}
            self.secgroups, self.sgrules, self.fips = {}, {}, {}
            self.stats = {"requests": 0, "by_route": {}, "faults": {}, "tokens_issued": 0}
            os_netmodel.create_default_networks(self)

    def set_config(self, patch):
        self.config = os_config.merged(self.config, patch)
        if "faults" in patch and "seed" in patch["faults"]:
            self.seed_rngs()

    def seed_rngs(self):
        seed = self.config["faults"].get("seed")
        self.rng = random.Random(seed)
        self.fault_rng = random.Random(None if seed is None else seed + 1)

    def start_ticker(self):
        thread = threading.Thread(target=self._tick_loop, name="openstack-sim-ticker",
                                  daemon=True)
        thread.start()

    def stop(self):
        self._stop.set()
        with self.lock:
            self.boot.kill_all()

    def _tick_loop(self):
        while not self._stop.wait(TICK_S):
            with self.lock:
                self.tick(time.monotonic())

    def tick(self, now):
        os_lifecycle.tick(self, now)
        self.expire_tokens(time.time())

    # ----- tokens -----------------------------------------------------------------------
    def tokens_valid(self, token_id):
        """The token record if token_id is known, unexpired and unrevoked."""
        token = self.tokens.get(token_id or "")
        if token is None:
            return None
        now = time.time()
        if now >= token["expires"] or (token.get("revoke_at") and now >= token["revoke_at"]):
            return None
        return token

    def expire_tokens(self, now):
        # Keep expired tokens a while so that validation can say 404 vs 401.
        for tid in [t for t, tok in self.tokens.items() if now > tok["expires"] + 600]:
            del self.tokens[tid]

    # ----- statistics -------------------------------------------------------------------
    def count_request(self, route):
        self.stats["requests"] += 1
        self.stats["by_route"][route] = self.stats["by_route"].get(route, 0) + 1

    def count_fault(self, kind):
        self.stats["faults"][kind] = self.stats["faults"].get(kind, 0) + 1

    # ----- lookups ----------------------------------------------------------------------
    def project(self, project_id):
        return os_config.find_by(self.config["projects"], id=project_id)

    def quota(self, name):
        return self.config["quotas"].get(name, -1)
