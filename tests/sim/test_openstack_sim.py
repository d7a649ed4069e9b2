"""Contract tests of the OpenStack simulator (openstack_sim.py): responses are
pinned to the reference examples stored under contract/openstack/ (every key
path of an example, same JSON types) and the stateful behaviour the OpenStack
driver relies on is exercised end to end over real HTTP.

  python3 -m unittest discover -s tests/sim -p 'test_openstack*.py'
"""

import base64
import os
import socket
import subprocess
import tempfile
import time
import unittest

import os_config
from os_testlib import (Client, Sim, fixture, password_auth, read_text, shape_mismatches,
                        wait_for)

EXTRA_FLAVORS = [
    {"id": "g1.vgpu1", "name": "g1.vgpu1", "vcpus": 4, "ram": 8192, "disk": 40,
     "extra_specs": {"resources:VGPU": "1"}},
    {"id": "g1.custom.a100x2", "name": "g1.custom.a100x2", "vcpus": 8, "ram": 32768,
     "disk": 40, "extra_specs": {"resources:CUSTOM_GPU_A100": "2"}},
]
TEST_CONFIG = {
    "build_ms": 150, "delete_ms": 60, "boot": "exec",
    "flavors": os_config.DEFAULTS["flavors"] + EXTRA_FLAVORS,
    "hosts": [{"name": "cmp1", "vcpus": 64, "ram_mb": 524288, "pci": {"a100": 4}},
              {"name": "cmp2", "vcpus": 32, "ram_mb": 262144, "pci": {"t4": 2, "vgpu": 1}}],
}
SIM = None


def setUpModule():
    global SIM
    SIM = Sim(TEST_CONFIG)


def tearDownModule():
    SIM.stop_clean()


class SimCase(unittest.TestCase):
    """One shared simulator, reset before every test."""

    maxDiff = None

    def setUp(self):
        self.c = Client(SIM.url)
        self.assertEqual(self.c.request("POST", "/_sim/reset").status, 200)
        self._tokens = {}

    def tearDown(self):
        self.c.close()

    # ----- helpers -----------------------------------------------------------------------
    def assertShape(self, example, actual, free_form=()):
        self.assertEqual(shape_mismatches(example, actual, free_form=free_form), [])

    def assertFixture(self, fx, actual):
        self.assertShape(fx["response"], actual, fx.get("free_form", ()))

    def set_config(self, patch):
        self.assertEqual(self.c.request("PUT", "/_sim/config", patch).status, 200)

    def inventory(self):
        return self.c.request("GET", "/_sim/inventory").body

    def token(self, user="demo", project="demo"):
        key = (user, project)
        if key not in self._tokens:
            r = self.c.request("POST", "/identity/v3/auth/tokens", password_auth(user, project=project))
            self.assertEqual(r.status, 201, r.raw)
            self._tokens[key] = r.header("X-Subject-Token")
        return self._tokens[key]

    def api(self, method, path, body=None, token=None, mv=None, user="demo", headers=None):
        hdrs = {"X-Auth-Token": token or self.token(user)}
        if mv:
            hdrs["OpenStack-API-Version"] = "compute " + mv
        hdrs.update(headers or {})
        return self.c.request(method, path, body, hdrs)

    def nova(self, method, path, body=None, **kw):
        return self.api(method, "/compute/v2.1" + path, body, **kw)

    def neutron(self, method, path, body=None, **kw):
        return self.api(method, "/network/v2.0" + path, body, **kw)

    def private_net(self):
        return self.neutron("GET", "/networks?name=private").body["networks"][0]

    def create_server(self, name="vm", flavor="m1.small", expect=202, **extra):
        server = {"name": name, "flavorRef": flavor, "imageRef": os_config.UBUNTU_ID,
                  "networks": [{"uuid": self.private_net()["id"]}]}
        server.update(extra)
        r = self.nova("POST", "/servers", {"server": server})
        self.assertEqual(r.status, expect, r.raw)
        return r.body["server"]["id"] if expect == 202 else r

    def show(self, server_id, **kw):
        return self.nova("GET", "/servers/" + server_id, **kw)

    def wait_status(self, server_id, status, timeout=5.0):
        got = wait_for(lambda: self.show(server_id).body["server"]["status"] == status, timeout)
        self.assertTrue(got, "server %s never reached %s" % (server_id, status))
        return self.show(server_id).body["server"]

    def wait_gone(self, server_id):
        self.assertTrue(wait_for(lambda: self.show(server_id).status == 404),
                        "server %s not deleted" % server_id)

    def server_port(self, server_id):
        return self.neutron("GET", "/ports?device_id=" + server_id).body["ports"][0]

    def public_net_id(self):
        return self.neutron("GET", "/networks?router:external=true").body["networks"][0]["id"]


class KeystoneTests(SimCase):
    def test_password_token_matches_reference(self):
        fx = fixture("keystone_token_password.json")
        r = self.c.request("POST", "/identity/v3/auth/tokens", password_auth())
        self.assertEqual(r.status, fx["status"])
        self.assertShape(fx["response"], r.body)
        self.assertTrue(r.header("X-Subject-Token"))
        token = r.body["token"]
        self.assertRegex(token["expires_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual(token["project"]["name"], "demo")
        types = {e["type"]: e for e in token["catalog"]}
        self.assertEqual(set(types), {"compute", "network", "image", "identity"})
        ifaces = {e["interface"] for e in types["compute"]["endpoints"]}
        self.assertEqual(ifaces, {"public", "internal", "admin"})

    def test_catalog_urls_are_usable(self):
        r = self.c.request("POST", "/identity/v3/auth/tokens", password_auth())
        tok = r.header("X-Subject-Token")
        urls = {e["type"]: [p for p in e["endpoints"] if p["interface"] == "public"][0]["url"]
                for e in r.body["token"]["catalog"]}
        hdr = {"X-Auth-Token": tok}
        self.assertEqual(self.c.request("GET", urls["compute"] + "/flavors", headers=hdr).status, 200)
        self.assertEqual(self.c.request("GET", urls["network"] + "/v2.0/networks", headers=hdr).status, 200)
        self.assertEqual(self.c.request("GET", urls["image"] + "/v2/images", headers=hdr).status, 200)
        v = self.c.request("GET", urls["identity"] + "/v3")
        self.assertShape(fixture("keystone_version.json")["response"], v.body)

    def test_password_by_ids_and_nocatalog(self):
        cfg = self.c.request("GET", "/_sim/config").body
        user = [u for u in cfg["users"] if u["name"] == "demo"][0]
        proj = [p for p in cfg["projects"] if p["name"] == "demo"][0]
        body = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"id": user["id"], "password": "secret"}}},
            "scope": {"project": {"id": proj["id"]}}}}
        r = self.c.request("POST", "/identity/v3/auth/tokens?nocatalog", body)
        self.assertEqual(r.status, 201)
        self.assertNotIn("catalog", r.body["token"])
        self.assertEqual(r.body["token"]["project"]["id"], proj["id"])

    def test_application_credential_by_id_and_name(self):
        fx = fixture("keystone_token_app_credential.json")
        cred = os_config.DEFAULTS["app_credentials"][0]
        by_id = {"auth": {"identity": {"methods": ["application_credential"],
                                       "application_credential": {"id": cred["id"], "secret": cred["secret"]}}}}
        by_name = {"auth": {"identity": {"methods": ["application_credential"],
                                         "application_credential": {
                                             "name": cred["name"], "secret": cred["secret"],
                                             "user": {"name": "demo", "domain": {"name": "Default"}}}}}}
        for body in (by_id, by_name):
            r = self.c.request("POST", "/identity/v3/auth/tokens", body)
            self.assertEqual(r.status, fx["status"], r.raw)
            self.assertShape(fx["response"], r.body)
            self.assertEqual(r.body["token"]["project"]["name"], "demo")
            self.assertEqual(r.body["token"]["methods"], ["application_credential"])
        tok = r.header("X-Subject-Token")
        self.assertEqual(self.nova("GET", "/flavors", token=tok).status, 200)

    def test_auth_failures(self):
        errors = fixture("keystone_errors.json")
        unauthorized = errors["unauthorized"]["response"]
        for body in (password_auth(password="wrong"), password_auth(user="nobody"),
                     password_auth(project="nope"), password_auth(domain="Other")):
            r = self.c.request("POST", "/identity/v3/auth/tokens", body)
            self.assertEqual(r.status, 401, body)
            self.assertShape(unauthorized, r.body)
        r = self.c.request("POST", "/identity/v3/auth/tokens", password_auth(password="wrong"))
        self.assertEqual(r.body, unauthorized)
        cred = os_config.DEFAULTS["app_credentials"][0]
        bad_secret = {"auth": {"identity": {"methods": ["application_credential"],
                                            "application_credential": {"id": cred["id"], "secret": "x"}}}}
        self.assertEqual(self.c.request("POST", "/identity/v3/auth/tokens", bad_secret).status, 401)
        scoped = dict(bad_secret)
        scoped["auth"]["identity"]["application_credential"]["secret"] = cred["secret"]
        scoped["auth"]["scope"] = {"project": {"name": "demo", "domain": {"name": "Default"}}}
        self.assertEqual(self.c.request("POST", "/identity/v3/auth/tokens", scoped).status, 401)
        for raw in (b"{not json", b'{"auth": {"identity": {}}}'):
            r = self.c.request("POST", "/identity/v3/auth/tokens", raw_body=raw,
                               headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 400)
            self.assertShape(errors["bad_request"]["response"], r.body)
            self.assertEqual(r.body["error"]["title"], "Bad Request")

    def test_validate_and_revoke(self):
        tok = self.token()
        other = self.c.request("POST", "/identity/v3/auth/tokens", password_auth()).header("X-Subject-Token")
        hdr = {"X-Auth-Token": tok, "X-Subject-Token": other}
        r = self.c.request("GET", "/identity/v3/auth/tokens", headers=hdr)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Subject-Token"), other)
        self.assertEqual(self.c.request("HEAD", "/identity/v3/auth/tokens", headers=hdr).status, 200)
        self.assertEqual(self.c.request("DELETE", "/identity/v3/auth/tokens", headers=hdr).status, 204)
        r = self.c.request("GET", "/identity/v3/auth/tokens", headers=hdr)
        self.assertEqual(r.status, 404)
        self.assertShape(fixture("keystone_errors.json")["not_found"]["response"], r.body)
        self.assertEqual(self.nova("GET", "/flavors", token=other).status, 401)

    def test_token_expiry(self):
        self.set_config({"token_ttl_s": 1})
        tok = self.token()
        self.assertEqual(self.nova("GET", "/flavors", token=tok).status, 200)
        time.sleep(1.2)
        r = self.nova("GET", "/flavors", token=tok)
        self.assertEqual(r.status, 401)
        self.assertEqual(r.body, fixture("keystone_errors.json")["unauthorized"]["response"])
        self.assertEqual(r.header("WWW-Authenticate"), 'Keystone uri="%s/identity"' % SIM.url)

    def test_revoke_tokens_after(self):
        self.set_config({"revoke_tokens_after_s": 0.5})
        tok = self.token()
        self.assertEqual(self.nova("GET", "/flavors", token=tok).status, 200)
        time.sleep(0.7)
        self.assertEqual(self.nova("GET", "/flavors", token=tok).status, 401)

    def test_every_service_requires_a_token(self):
        for path in ("/compute/v2.1/servers", "/network/v2.0/networks", "/image/v2/images"):
            for hdr in ({}, {"X-Auth-Token": "bogus"}):
                r = self.c.request("GET", path, headers=hdr)
                self.assertEqual(r.status, 401, path)
                self.assertIn("Keystone uri=", r.header("WWW-Authenticate"))
                self.assertEqual(r.body["error"]["code"], 401)

    def test_unscoped_token_is_not_accepted_by_services(self):
        body = password_auth()
        del body["auth"]["scope"]
        r = self.c.request("POST", "/identity/v3/auth/tokens", body)
        self.assertEqual(r.status, 201)
        self.assertNotIn("project", r.body["token"])
        self.assertEqual(self.nova("GET", "/flavors", token=r.header("X-Subject-Token")).status, 401)

    def test_catalog_omit(self):
        self.set_config({"catalog_omit": ["network"]})
        r = self.c.request("POST", "/identity/v3/auth/tokens", password_auth())
        self.assertEqual({e["type"] for e in r.body["token"]["catalog"]},
                         {"compute", "image", "identity"})
        self.assertEqual(self.neutron("GET", "/networks").status, 200)


class NovaCatalogTests(SimCase):
    def test_flavors_detail_with_extra_specs(self):
        fx = fixture("nova_flavors_detail_v2.61.json")
        r = self.nova("GET", "/flavors/detail", mv=fx["microversion"])
        self.assertEqual(r.status, 200)
        self.assertFixture(fx, r.body)
        by_id = {f["id"]: f for f in r.body["flavors"]}
        self.assertEqual(by_id["g1.a100x2"]["extra_specs"], {"pci_passthrough:alias": "a100:2"})
        self.assertEqual(by_id["g1.a100x2"]["vcpus"], 16)
        self.assertEqual(by_id["g1.a100x2"]["ram"], 131072)
        old = self.nova("GET", "/flavors/detail").body["flavors"][0]
        self.assertNotIn("extra_specs", old)
        self.assertEqual(old["swap"], "")

    def test_flavor_show_and_extra_specs(self):
        fx = fixture("nova_flavor_show.json")
        r = self.nova("GET", "/flavors/g1.t4x1")
        self.assertShape(fx["response"], r.body)
        specs = self.nova("GET", "/flavors/g1.t4x1/os-extra_specs")
        self.assertEqual(specs.body, {"extra_specs": {"pci_passthrough:alias": "t4:1"}})
        r = self.nova("GET", "/flavors/nope")
        self.assertEqual(r.status, 404)
        self.assertShape(fixture("nova_errors.json")["item_not_found"]["response"], r.body)

    def test_microversion_headers(self):
        r = self.nova("GET", "/flavors", mv="2.47")
        self.assertEqual(r.header("OpenStack-API-Version"), "compute 2.47")
        self.assertEqual(r.header("X-OpenStack-Nova-API-Version"), "2.47")
        r = self.nova("GET", "/flavors", headers={"X-OpenStack-Nova-API-Version": "2.61"})
        self.assertEqual(r.header("OpenStack-API-Version"), "compute 2.61")
        self.assertEqual(self.nova("GET", "/flavors", mv="latest").header(
            "X-OpenStack-Nova-API-Version"), "2.79")
        self.assertEqual(self.nova("GET", "/flavors").header("X-OpenStack-Nova-API-Version"), "2.1")
        self.assertEqual(self.nova("GET", "/flavors", mv="2.99").status, 406)
        self.assertEqual(self.nova("GET", "/flavors", mv="two").status, 400)
        root = self.c.request("GET", "/compute/v2.1").body["version"]
        self.assertEqual((root["min_version"], root["version"]), ("2.1", "2.79"))

    def test_images(self):
        fx = fixture("glance_images_list.json")
        r = self.api("GET", "/image/v2/images")
        self.assertEqual(r.status, 200)
        self.assertShape(fx["response"], r.body)
        names = {i["name"] for i in r.body["images"]}
        self.assertEqual(names, {"ubuntu-22.04", "ubuntu-22.04-cuda"})
        r = self.api("GET", "/image/v2/images?name=ubuntu-22.04-cuda")
        self.assertEqual([i["id"] for i in r.body["images"]], [os_config.UBUNTU_CUDA_ID])
        self.assertEqual(self.api("GET", "/image/v2/images?status=queued").body["images"], [])
        one = self.api("GET", "/image/v2/images/" + os_config.UBUNTU_ID)
        self.assertShape(fx["response"]["images"][0], one.body)
        missing = self.api("GET", "/image/v2/images/nope")
        self.assertEqual((missing.status, missing.body["title"]), (404, "Not Found"))
        html = self.api("GET", "/image/v2/images/nope", headers={"Accept": "*/*"})
        self.assertIn(b"<h1>404 Not Found</h1>", html.raw)

    def test_keypairs(self):
        fx = fixture("nova_keypair_create_v2.2.json")
        r = self.nova("POST", "/os-keypairs", {"keypair": {"name": "gen"}}, mv="2.2")
        self.assertEqual(r.status, fx["status"])
        self.assertShape(fx["response"], r.body)
        pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1sXrnV1Z3pq3b0ZxqgQ8b9E8pK2Wq2c0j6t7l9lbd me@x"
        r = self.nova("POST", "/os-keypairs", {"keypair": {"name": "imp", "public_key": pub}})
        self.assertEqual(r.status, 200)  # 2.1 answers 200, 2.2+ 201
        self.assertNotIn("private_key", r.body["keypair"])
        r = self.nova("POST", "/os-keypairs", {"keypair": {"name": "imp", "public_key": pub}})
        self.assertEqual(r.status, 409)
        self.assertEqual(r.body, {"conflictingRequest": {
            "code": 409, "message": "Key pair 'imp' already exists."}})
        listing = self.nova("GET", "/os-keypairs")
        self.assertShape(fixture("nova_keypairs_list.json")["response"], listing.body)
        self.assertEqual(sorted(k["keypair"]["name"] for k in listing.body["keypairs"]), ["gen", "imp"])
        self.assertEqual(self.nova("GET", "/os-keypairs/imp").body["keypair"]["public_key"], pub)
        self.assertEqual(self.inventory()["keypairs"], ["gen", "imp"])
        self.assertEqual(self.nova("DELETE", "/os-keypairs/imp", mv="2.2").status, 204)
        self.assertEqual(self.nova("DELETE", "/os-keypairs/gen").status, 202)
        self.assertEqual(self.nova("GET", "/os-keypairs/imp").status, 404)
        bad = self.nova("POST", "/os-keypairs", {"keypair": {"name": "x", "public_key": "junk"}})
        self.assertEqual(bad.status, 400)


class ServerTests(SimCase):
    def test_lifecycle_build_active_delete(self):
        fx = fixture("nova_server_create.json")
        server = {"name": "web-1", "flavorRef": "m1.small", "imageRef": os_config.UBUNTU_ID,
                  "networks": [{"uuid": self.private_net()["id"]}],
                  "metadata": {"orc-job": "j1"}, "security_groups": [{"name": "default"}]}
        r = self.nova("POST", "/servers", {"server": server})
        self.assertEqual(r.status, fx["status"], r.raw)
        self.assertShape(fx["response"], r.body)
        sid = r.body["server"]["id"]
        self.assertTrue(r.header("Location").endswith("/compute/v2.1/servers/" + sid))
        first = self.show(sid).body["server"]
        self.assertEqual((first["status"], first["OS-EXT-STS:task_state"]), ("BUILD", "spawning"))
        active = self.wait_status(sid, "ACTIVE")
        self.assertEqual(active["OS-EXT-STS:vm_state"], "active")
        self.assertIsNone(active["OS-EXT-STS:task_state"])
        self.assertEqual(active["OS-EXT-STS:power_state"], 1)
        self.assertEqual(active["metadata"], {"orc-job": "j1"})
        fixed = active["addresses"]["private"][0]
        self.assertEqual((fixed["OS-EXT-IPS:type"], fixed["version"]), ("fixed", 4))
        self.assertTrue(fixed["addr"].startswith("10.0.0."))
        port = self.server_port(sid)
        self.assertEqual((port["device_owner"], port["status"]), ("compute:nova", "ACTIVE"))
        self.assertEqual(port["fixed_ips"][0]["ip_address"], fixed["addr"])
        self.assertEqual(self.nova("DELETE", "/servers/" + sid).status, 204)
        deleting = self.show(sid)
        if deleting.status == 200:
            self.assertEqual(deleting.body["server"]["OS-EXT-STS:task_state"], "deleting")
        self.wait_gone(sid)
        r = self.show(sid)
        self.assertEqual(r.body, {"itemNotFound": {
            "code": 404, "message": "Instance %s could not be found." % sid}})
        self.assertEqual(self.neutron("GET", "/ports?device_id=" + sid).body["ports"], [])

    def test_show_matches_reference_v247_admin(self):
        fx = fixture("nova_server_show_v2.47.json")
        user_data = base64.b64encode(b"#cloud-config\n{}\n").decode()
        sid = self.create_server("ref", user_data=user_data, key_name=None)
        self.wait_status(sid, "ACTIVE")
        r = self.show(sid, mv=fx["microversion"], user="admin")
        self.assertFixture(fx, r.body)
        flavor = r.body["server"]["flavor"]
        self.assertEqual(flavor["original_name"], "m1.small")
        self.assertEqual(flavor["vcpus"], 2)
        member = self.show(sid, mv="2.47").body["server"]
        self.assertNotIn("OS-EXT-SRV-ATTR:host", member)
        self.assertIn("id", self.show(sid).body["server"]["flavor"])  # < 2.47: id + links

    def test_list_filters_and_duplicate_names(self):
        a = self.create_server("job-a")
        b = self.create_server("job-a")
        c = self.create_server("other")
        self.assertEqual(len({a, b, c}), 3)
        names = self.nova("GET", "/servers?name=^job-").body["servers"]
        self.assertEqual({s["id"] for s in names}, {a, b})
        self.assertEqual(set(names[0]), {"id", "name", "links"})
        self.wait_status(c, "ACTIVE")
        for sid in (a, b):
            self.wait_status(sid, "ACTIVE")
        detail = self.nova("GET", "/servers/detail?status=ACTIVE&name=other").body["servers"]
        self.assertEqual([s["id"] for s in detail], [c])
        self.assertEqual(self.nova("GET", "/servers/detail?status=ERROR").body["servers"], [])
        self.assertEqual(len(self.inventory()["servers"]), 3)

    def test_error_rate_and_fault_shape(self):
        fx = fixture("nova_server_show_error.json")
        self.set_config({"error_rate": 1.0})
        sid = self.create_server("doomed", user_data=base64.b64encode(b"#!/bin/sh\n").decode())
        self.wait_status(sid, "ERROR")
        r = self.show(sid, mv=fx["microversion"], user="admin")
        self.assertFixture(fx, r.body)
        fault = r.body["server"]["fault"]
        self.assertEqual(fault["code"], 500)
        self.assertEqual(fault["message"], os_config.DEFAULT_ERROR_FAULT.format(id=sid))
        self.assertNotIn("details", self.show(sid).body["server"]["fault"])  # non-admin, 500
        self.assertEqual(self.inventory()["processes"], 0)

    def test_stuck_build(self):
        self.set_config({"stuck_build_rate": 1.0})
        sid = self.create_server("stuck")
        time.sleep(0.6)
        self.assertEqual(self.show(sid).body["server"]["status"], "BUILD")
        self.assertEqual(self.nova("DELETE", "/servers/" + sid).status, 204)
        self.wait_gone(sid)

    def test_no_valid_host_and_capacity_freed(self):
        first = self.create_server("gpu-1", "g1.a100x2")
        second = self.create_server("gpu-2", "g1.custom.a100x2")  # CUSTOM_GPU_A100 -> a100
        third = self.create_server("gpu-3", "g1.a100x1")
        for sid in (first, second):
            self.wait_status(sid, "ACTIVE")
        failed = self.wait_status(third, "ERROR")
        self.assertEqual(failed["fault"]["code"], 500)
        self.assertEqual(failed["fault"]["message"],
                         "No valid host was found. There are not enough hosts available.")
        hosts = {h["name"]: h for h in self.inventory()["hosts"]}
        self.assertEqual(hosts["cmp1"]["pci_free"]["a100"], 0)
        self.nova("DELETE", "/servers/" + first)
        self.wait_gone(first)
        self.assertEqual({h["name"]: h for h in self.inventory()["hosts"]}["cmp1"]["pci_free"]["a100"], 2)
        self.wait_status(self.create_server("gpu-4", "g1.a100x2"), "ACTIVE")
        vgpu = self.create_server("v-1", "g1.vgpu1")  # resources:VGPU -> pci "vgpu"
        self.assertEqual(self.wait_status(vgpu, "ACTIVE")["OS-EXT-STS:vm_state"], "active")
        self.wait_status(self.create_server("v-2", "g1.vgpu1"), "ERROR")

    def test_quota_forbidden_and_limits(self):
        fx = fixture("nova_limits.json")
        self.set_config({"quotas": {"cores": 20}})
        limits = self.nova("GET", "/limits")
        self.assertShape(fx["response"], limits.body)
        self.assertEqual(limits.body["limits"]["absolute"]["maxTotalCores"], 20)
        self.create_server("q1", "m1.large")
        self.create_server("q2", "m1.large")
        r = self.create_server("q3", "m1.large", expect=403)
        self.assertEqual(r.body, {"forbidden": {"code": 403, "message":
                                  "Quota exceeded for cores: Requested 8, but already used 16 of 20 cores"}})
        absolute = self.nova("GET", "/limits").body["limits"]["absolute"]
        self.assertEqual((absolute["totalCoresUsed"], absolute["totalInstancesUsed"],
                          absolute["totalRAMUsed"]), (16, 2, 32768))
        self.assertNotIn("maxTotalFloatingIps", self.nova("GET", "/limits", mv="2.36").body["limits"]["absolute"])

    def test_bad_requests(self):
        bad = fixture("nova_errors.json")["bad_request"]["response"]
        cases = [("flavorRef", "nope", "Flavor nope could not be found."),
                 ("imageRef", "00000000-0000-0000-0000-000000000000",
                  "Image 00000000-0000-0000-0000-000000000000 could not be found."),
                 ("networks", [{"uuid": "bad-net"}], "Network bad-net could not be found."),
                 ("user_data", "***", "User data needs to be valid base 64."),
                 ("key_name", "missing", "Invalid key_name provided.")]
        for key, value, message in cases:
            r = self.create_server("bad", expect=400, **{key: value})
            self.assertShape(bad, r.body)
            self.assertEqual(r.body["badRequest"]["message"], message)
        r = self.nova("GET", "/servers/00000000-0000-0000-0000-000000000000")
        self.assertEqual(r.status, 404)
        self.assertShape(fixture("nova_errors.json")["item_not_found"]["response"], r.body)
        r = self.nova("POST", "/servers", {"server": {"name": "x", "flavorRef": "m1.small",
                                                      "imageRef": os_config.UBUNTU_ID}}, mv="2.37")
        self.assertEqual(r.status, 400)  # networks required from 2.37
        self.assertEqual(self.inventory()["servers"], [])

    def test_pagination_and_legacy_project_path(self):
        ids = [self.create_server("page-%d" % i) for i in range(3)]
        first = self.nova("GET", "/servers?limit=2")
        self.assertEqual([s["id"] for s in first.body["servers"]], ids[:0:-1])
        self.assertEqual(first.body["servers_links"][0]["rel"], "next")
        rest = self.nova("GET", "/servers?limit=2&marker=" + ids[1]).body["servers"]
        self.assertEqual([s["id"] for s in rest], [ids[0]])
        self.assertEqual(self.nova("GET", "/servers?limit=x").status, 400)
        project = self.c.request("POST", "/identity/v3/auth/tokens", password_auth()).body["token"]["project"]["id"]
        legacy = self.nova("GET", "/%s/servers/%s" % (project, ids[0]))
        self.assertEqual(legacy.body["server"]["id"], ids[0])

    def test_networks_auto_none_and_external(self):
        auto = self.nova("POST", "/servers", {"server": {
            "name": "auto", "flavorRef": "m1.small", "imageRef": os_config.UBUNTU_ID,
            "networks": "auto"}}, mv="2.37").body["server"]["id"]
        none = self.nova("POST", "/servers", {"server": {
            "name": "none", "flavorRef": "m1.small", "imageRef": os_config.UBUNTU_ID,
            "networks": "none"}}, mv="2.37").body["server"]["id"]
        self.assertEqual(list(self.wait_status(auto, "ACTIVE")["addresses"]), ["private"])
        self.assertEqual(self.wait_status(none, "ACTIVE")["addresses"], {})
        r = self.create_server("ext", expect=403, networks=[{"uuid": self.public_net_id()}])
        self.assertIn("forbidden", r.body)


class NeutronTests(SimCase):
    def test_networks_and_subnets(self):
        nets = self.neutron("GET", "/networks").body["networks"]
        self.assertEqual({n["name"] for n in nets}, {"private", "public"})
        ext = self.neutron("GET", "/networks?router:external=true").body["networks"]
        self.assertEqual([n["name"] for n in ext], ["public"])
        one = self.neutron("GET", "/networks?id=" + ext[0]["id"]).body["networks"]
        self.assertEqual(len(one), 1)
        self.assertEqual(self.neutron("GET", "/networks/" + ext[0]["id"]).body["network"]["name"], "public")
        subnets = {s["cidr"] for s in self.neutron("GET", "/subnets").body["subnets"]}
        self.assertEqual(subnets, {"10.0.0.0/24", "172.24.4.0/24"})
        r = self.neutron("GET", "/networks/nope")
        self.assertEqual((r.status, r.body["NeutronError"]["type"]), (404, "NetworkNotFound"))

    def test_security_groups_rules_and_in_use(self):
        fx = fixture("neutron_security_group_create.json")
        errors = fixture("neutron_errors.json")
        r = self.neutron("POST", "/security-groups", fx["request"])
        self.assertEqual(r.status, fx["status"])
        self.assertShape(fx["response"], r.body)
        sg = r.body["security_group"]
        rules = sg["security_group_rules"]
        self.assertEqual(sorted((x["direction"], x["ethertype"]) for x in rules),
                         [("egress", "IPv4"), ("egress", "IPv6")])
        twin = self.neutron("POST", "/security-groups", fx["request"]).body["security_group"]
        same = self.neutron("GET", "/security-groups?name=new-webservers").body["security_groups"]
        self.assertEqual({g["id"] for g in same}, {sg["id"], twin["id"]})
        rule_fx = fixture("neutron_security_group_rule_create.json")
        spec = dict(rule_fx["request"]["security_group_rule"], security_group_id=sg["id"],
                    remote_group_id=sg["id"])  # the reference request, in our group
        r = self.neutron("POST", "/security-group-rules", {"security_group_rule": spec})
        self.assertEqual(r.status, rule_fx["status"], r.raw)
        self.assertShape(rule_fx["response"], r.body)
        self.assertEqual(r.body["security_group_rule"]["port_range_min"], 80)
        spec = {"security_group_id": sg["id"], "direction": "ingress", "ethertype": "IPv4",
                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                "remote_ip_prefix": "0.0.0.0/0"}
        r = self.neutron("POST", "/security-group-rules", {"security_group_rule": spec})
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual(r.body["security_group_rule"]["remote_ip_prefix"], "0.0.0.0/0")
        rule_id = r.body["security_group_rule"]["id"]
        dup = self.neutron("POST", "/security-group-rules", {"security_group_rule": spec})
        self.assertEqual(dup.status, 409)
        self.assertShape(errors["rule_exists"]["response"], dup.body)
        self.assertEqual(dup.body["NeutronError"]["type"], "SecurityGroupRuleExists")
        self.assertEqual(self.neutron("GET", "/security-group-rules/" + rule_id).status, 200)
        bad = dict(spec, port_range_min=30, port_range_max=20)
        self.assertEqual(self.neutron("POST", "/security-group-rules", {"security_group_rule": bad}).status, 400)
        sid = self.create_server("sg-user", security_groups=[{"name": sg["id"]}])
        self.assertIn(sg["id"], self.server_port(sid)["security_groups"])
        r = self.neutron("DELETE", "/security-groups/" + sg["id"])
        self.assertEqual(r.status, 409)
        self.assertEqual(r.body, {"NeutronError": {"type": "SecurityGroupInUse", "message":
                                  "Security Group %s in use." % sg["id"], "detail": ""}})
        self.assertEqual(self.neutron("DELETE", "/security-group-rules/" + rule_id).status, 204)
        self.nova("DELETE", "/servers/" + sid)
        self.wait_gone(sid)
        self.assertEqual(self.neutron("DELETE", "/security-groups/" + sg["id"]).status, 204)
        r = self.neutron("GET", "/security-groups/" + sg["id"])
        self.assertEqual(r.status, 404)
        self.assertShape(errors["not_found"]["response"], r.body)
        self.assertEqual([g["name"] for g in self.inventory()["security_groups"]], ["new-webservers"])

    def test_ambiguous_group_name_and_default_group(self):
        for _ in range(2):
            self.neutron("POST", "/security-groups", {"security_group": {"name": "twin"}})
        r = self.create_server("amb", expect=409, security_groups=[{"name": "twin"}])
        self.assertIn("conflictingRequest", r.body)
        groups = self.neutron("GET", "/security-groups?name=default").body["security_groups"]
        self.assertEqual(len(groups), 1)
        self.assertEqual(len(groups[0]["security_group_rules"]), 4)
        r = self.neutron("DELETE", "/security-groups/" + groups[0]["id"])
        self.assertEqual(r.status, 409)

    def test_runtime_cidr_change_and_config_validation(self):
        self.set_config({"fixed_cidr": "192.168.50.0/24"})
        sid = self.create_server("renum")
        self.assertTrue(self.server_port(sid)["fixed_ips"][0]["ip_address"].startswith("192.168.50."))
        self.assertEqual(self.c.request("PUT", "/_sim/config", {"fixed_cidr": "10.9.0.0/24"}).status, 409)
        for bad in ({"build_msec": 1}, {"faults": {"kinds": ["418"]}}, {"quotas": []}):
            self.assertEqual(self.c.request("PUT", "/_sim/config", bad).status, 400, bad)

    def test_security_group_quota(self):
        self.set_config({"quotas": {"security_groups": 2}})
        self.assertEqual(self.neutron("POST", "/security-groups", {"security_group": {"name": "a"}}).status, 201)
        r = self.neutron("POST", "/security-groups", {"security_group": {"name": "b"}})
        self.assertEqual(r.status, 409)  # the project's "default" group counts too
        self.assertEqual(r.body["NeutronError"]["type"], "OverQuota")

    def test_floating_ip_lifecycle(self):
        fx = fixture("neutron_floatingip_create.json")
        sid = self.create_server("fip-vm")
        self.wait_status(sid, "ACTIVE")
        port = self.server_port(sid)
        body = {"floatingip": {"floating_network_id": self.public_net_id(), "port_id": port["id"],
                               "description": "orc:job-1"}}
        r = self.neutron("POST", "/floatingips", body)
        self.assertEqual(r.status, fx["status"], r.raw)
        self.assertShape(fx["response"], r.body)
        fip = r.body["floatingip"]
        self.assertEqual((fip["status"], fip["fixed_ip_address"]),
                         ("ACTIVE", port["fixed_ips"][0]["ip_address"]))
        self.assertTrue(fip["floating_ip_address"].startswith("172.24.4."))
        addrs = self.show(sid).body["server"]["addresses"]["private"]
        self.assertEqual([(a["addr"], a["OS-EXT-IPS:type"]) for a in addrs][1],
                         (fip["floating_ip_address"], "floating"))
        for query in ("port_id=" + port["id"], "floating_ip_address=" + fip["floating_ip_address"],
                      "description=orc:job-1"):
            found = self.neutron("GET", "/floatingips?" + query).body["floatingips"]
            self.assertEqual([f["id"] for f in found], [fip["id"]], query)
        self.nova("DELETE", "/servers/" + sid)
        self.wait_gone(sid)
        kept = self.neutron("GET", "/floatingips/" + fip["id"]).body["floatingip"]
        self.assertEqual((kept["port_id"], kept["status"], kept["fixed_ip_address"]),
                         (None, "DOWN", None))
        self.assertEqual(self.neutron("DELETE", "/floatingips/" + fip["id"]).status, 204)
        r = self.neutron("GET", "/floatingips/" + fip["id"])
        self.assertEqual(r.status, 404)
        self.assertShape(fixture("neutron_errors.json")["fip_not_found"]["response"], r.body)

    def test_floating_ip_associate_disassociate_and_quota(self):
        self.set_config({"quotas": {"floating_ips": 1}})
        sid = self.create_server("assoc")
        self.wait_status(sid, "ACTIVE")
        net_id = self.public_net_id()
        fip = self.neutron("POST", "/floatingips", {"floatingip": {"floating_network_id": net_id}}).body["floatingip"]
        self.assertEqual((fip["status"], fip["port_id"]), ("DOWN", None))
        r = self.neutron("POST", "/floatingips", {"floatingip": {"floating_network_id": net_id}})
        self.assertEqual(r.status, 409)
        self.assertEqual(r.body, fixture("neutron_errors.json")["over_quota"]["response"])
        port = self.server_port(sid)
        r = self.neutron("PUT", "/floatingips/" + fip["id"], {"floatingip": {"port_id": port["id"]}})
        self.assertEqual((r.status, r.body["floatingip"]["status"]), (200, "ACTIVE"))
        types = [a["OS-EXT-IPS:type"] for a in self.show(sid).body["server"]["addresses"]["private"]]
        self.assertEqual(types, ["fixed", "floating"])
        r = self.neutron("PUT", "/floatingips/" + fip["id"], {"floatingip": {"port_id": None}})
        self.assertEqual(r.body["floatingip"]["port_id"], None)
        self.assertEqual(len(self.show(sid).body["server"]["addresses"]["private"]), 1)
        inv = self.inventory()["floating_ips"]
        self.assertEqual([(f["id"], f["port_id"]) for f in inv], [(fip["id"], None)])


class BootTests(SimCase):
    SCRIPT = (b"#!/bin/sh\n"
              b"echo \"hello from $ORC_SIM_SERVER_NAME\"\n"
              b"printf '%s\\n' \"$ORC_SIM_SERVER_ID\" \"$ORC_SIM_FIXED_IP\" \"$ORC_SIM_METADATA\""
              b" \"$HOME\" \"$(pwd)\" > \"$HOME/marker.tmp\"\n"
              b"mv \"$HOME/marker.tmp\" \"$HOME/marker\"\n"
              b"echo $$ > \"$HOME/pid\"\n"
              b"exec sleep 60\n")

    def server_dir(self, sid):
        return os.path.join(SIM.state_dir, "servers", sid)

    def boot(self, name="boot-vm", script=None):
        data = base64.b64encode(script or self.SCRIPT).decode()
        sid = self.create_server(name, user_data=data, metadata={"role": "worker"})
        self.wait_status(sid, "ACTIVE")
        return sid

    def read(self, sid, name):
        path = os.path.join(self.server_dir(sid), name)
        return wait_for(lambda: read_text(path))

    def test_exec_user_data_runs_and_dies_with_server(self):
        sid = self.boot()
        marker = self.read(sid, "marker")
        self.assertTrue(marker, "user-data script did not run")
        server_id, fixed_ip, meta_path, home, cwd = marker.split("\n")[:5]
        self.assertEqual(server_id, sid)
        self.assertEqual(fixed_ip, self.server_port(sid)["fixed_ips"][0]["ip_address"])
        self.assertEqual(os.path.realpath(home), os.path.realpath(self.server_dir(sid)))
        self.assertEqual(os.path.realpath(cwd), os.path.realpath(home))
        with open(meta_path) as f:
            self.assertIn('"role": "worker"', f.read())
        pid = int(self.read(sid, "pid"))
        os.kill(pid, 0)
        self.assertEqual(self.inventory()["processes"], 1)
        out = self.nova("POST", "/servers/%s/action" % sid, fixture("nova_console_output.json")["request"])
        self.assertShape(fixture("nova_console_output.json")["response"], out.body)
        self.assertIn("hello from boot-vm", out.body["output"])
        tail = self.nova("POST", "/servers/%s/action" % sid, {"os-getConsoleOutput": {"length": 1}})
        self.assertEqual(tail.body["output"], "hello from boot-vm\n")
        self.nova("DELETE", "/servers/" + sid)
        self.wait_gone(sid)
        self.assertTrue(wait_for(lambda: not _alive(pid)), "boot process survived its server")
        self.assertEqual(self.inventory()["processes"], 0)

    def test_detached_children_die_with_server(self):
        # what the script starts in a session of its own (gpu-agent's workloads) is
        # part of the VM too
        script = (b"#!/bin/sh\n"
                  b"setsid sh -c 'echo $$ > detached; exec sleep 300' < /dev/null > /dev/null 2>&1 &\n"
                  b"sleep 300\n")
        sid = self.boot("detach-vm", script)
        pid = int(self.read(sid, "detached"))
        os.kill(pid, 0)
        self.nova("DELETE", "/servers/" + sid)
        self.wait_gone(sid)
        self.assertTrue(wait_for(lambda: not _alive(pid)), "a detached process survived its server")

    def test_floating_ip_file_follows_association(self):
        sid = self.boot("fip-boot")
        self.assertEqual(self.read(sid, "floating_ip") or "", "")
        fip = self.neutron("POST", "/floatingips", {"floatingip": {
            "floating_network_id": self.public_net_id(),
            "port_id": self.server_port(sid)["id"]}}).body["floatingip"]
        self.assertEqual(self.read(sid, "floating_ip"), fip["floating_ip_address"])
        self.neutron("PUT", "/floatingips/" + fip["id"], {"floatingip": {"port_id": None}})
        path = os.path.join(self.server_dir(sid), "floating_ip")
        self.assertTrue(wait_for(lambda: read_text(path) == ""))

    def test_cloud_config_is_only_logged(self):
        sid = self.boot("cc", b"#cloud-config\npackages: [htop]\n")
        out = self.nova("POST", "/servers/%s/action" % sid, {"os-getConsoleOutput": {}}).body["output"]
        self.assertIn("cloud-init: cloud-config ignored by the simulator", out)
        self.assertEqual(self.inventory()["processes"], 0)

    def test_console_not_ready_while_building(self):
        self.set_config({"stuck_build_rate": 1.0})
        sid = self.create_server("slow")
        r = self.nova("POST", "/servers/%s/action" % sid, {"os-getConsoleOutput": {"length": 5}})
        self.assertEqual(r.status, 409)

    def test_boot_none_runs_nothing(self):
        self.set_config({"boot": "none"})
        sid = self.boot("inert")
        time.sleep(0.2)
        self.assertFalse(os.path.exists(os.path.join(self.server_dir(sid), "marker")))
        self.assertEqual(self.inventory()["processes"], 0)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class FaultTests(SimCase):
    def faults(self, kinds, when="before", services=("compute",), methods=("GET",), **extra):
        cfg = {"rate": 1.0, "kinds": list(kinds), "when": when, "services": list(services),
               "methods": list(methods), "hang_ms": 300, "retry_after_s": 2}
        cfg.update(extra)
        self.set_config({"faults": cfg})

    def raw_exchange(self, path):
        """Send one request on a fresh socket; report data, 'reset' or 'eof'."""
        host, port = SIM.url.split("//")[1].split(":")
        sock = socket.create_connection((host, int(port)), timeout=5)
        try:
            sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n\r\n"
                          % (path, self.token())).encode())
            data = sock.recv(4096)
            return data or "eof"
        except ConnectionResetError:
            return "reset"
        finally:
            sock.close()

    def test_500_and_503_have_service_shapes(self):
        self.token()
        self.faults(["500"], services=["compute", "network", "identity", "image"])
        r = self.nova("GET", "/flavors")
        self.assertEqual(r.status, 500)
        self.assertShape(fixture("nova_errors.json")["compute_fault"]["response"], r.body)
        r = self.neutron("GET", "/networks")
        self.assertEqual((r.status, r.body["NeutronError"]["type"]), (500, "HTTPInternalServerError"))
        r = self.c.request("GET", "/identity/v3")
        self.assertEqual((r.status, r.body["error"]["title"]), (500, "Internal Server Error"))
        r = self.api("GET", "/image/v2/images")
        self.assertEqual((r.status, r.body["code"]), (500, "500 Internal Server Error"))
        self.faults(["503"], services=["compute", "network"])
        r = self.nova("GET", "/flavors")
        self.assertEqual(r.status, 503)
        self.assertShape(fixture("nova_errors.json")["service_unavailable"]["response"], r.body)
        self.assertEqual(self.neutron("GET", "/networks").body["NeutronError"]["type"],
                         "HTTPServiceUnavailable")
        self.assertEqual(self.c.request("GET", "/_sim/inventory").status, 200)  # never faulted
        stats = self.c.request("GET", "/_sim/stats").body
        self.assertEqual(stats["faults"], {"500": 4, "503": 2})

    def test_429_has_retry_after(self):
        self.token()
        self.faults(["429"])
        r = self.nova("GET", "/servers")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.header("Retry-After"), "2")
        self.assertEqual(r.body["overLimit"]["code"], 429)

    def test_reset_closes_with_rst(self):
        self.token()
        self.faults(["reset"])
        self.assertEqual(self.raw_exchange("/compute/v2.1/flavors"), "reset")

    def test_timeout_hangs_then_closes(self):
        self.token()
        self.faults(["timeout"])
        start = time.monotonic()
        self.assertEqual(self.raw_exchange("/compute/v2.1/flavors"), "eof")
        self.assertGreaterEqual(time.monotonic() - start, 0.28)

    def test_after_applies_the_effect(self):
        net_id = self.private_net()["id"]
        public = self.public_net_id()
        self.faults(["500"], when="after", methods=["POST"])
        r = self.nova("POST", "/servers", {"server": {
            "name": "lost-1", "flavorRef": "m1.small", "imageRef": os_config.UBUNTU_ID,
            "networks": [{"uuid": net_id}], "metadata": {"orc": "x"}}})
        self.assertEqual(r.status, 500)
        self.faults(["reset"], when="after", services=["network"], methods=["POST"])
        with self.assertRaises(ConnectionError):
            self.neutron("POST", "/floatingips", {"floatingip": {
                "floating_network_id": public, "description": "orc:lost"}})
        self.faults(["timeout"], when="after", services=["network"], methods=["POST"])
        with self.assertRaises(ConnectionError):
            self.neutron("POST", "/security-groups", {"security_group": {"name": "orc-lost"}})
        self.set_config({"faults": {"rate": 0.0}})
        found = self.nova("GET", "/servers?name=^lost-1$").body["servers"]
        self.assertEqual(len(found), 1)
        fips = self.neutron("GET", "/floatingips?description=orc:lost").body["floatingips"]
        self.assertEqual(len(fips), 1)
        self.assertEqual(len(self.neutron("GET", "/security-groups?name=orc-lost").body["security_groups"]), 1)

    def test_mixed_and_seeded(self):
        self.token()
        self.faults(["500"], when="mixed", methods=["POST"], seed=7)
        for i in range(6):
            self.create_server("m-%d" % i, expect=500)
        self.set_config({"faults": {"rate": 0.0}})
        created = len(self.nova("GET", "/servers?name=^m-").body["servers"])
        self.assertTrue(0 < created < 6, created)

    def test_latency(self):
        self.token()
        self.set_config({"latency_ms": [150, 150]})
        start = time.monotonic()
        self.nova("GET", "/flavors")
        self.assertGreaterEqual(time.monotonic() - start, 0.14)

    def test_stats_count_routes(self):
        self.token()
        self.nova("GET", "/flavors")
        self.nova("GET", "/flavors")
        stats = self.c.request("GET", "/_sim/stats").body
        self.assertEqual(stats["by_route"]["GET /flavors"], 2)
        self.assertEqual(stats["by_route"]["POST /auth/tokens"], 1)
        self.assertEqual(stats["tokens_issued"], 1)
        self.assertEqual(stats["requests"], 3)


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca_and_cert(directory):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=openstack-sim test CA", "-addext",
             "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
             cwd=directory)
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
             cwd=directory)


class StandaloneTests(unittest.TestCase):
    """Tests that need their own simulator process."""

    def test_tls_with_private_ca(self):
        with tempfile.TemporaryDirectory() as tmp:
            make_ca_and_cert(tmp)
            sim = Sim(None, ["--tls-cert", os.path.join(tmp, "server.pem"),
                             "--tls-key", os.path.join(tmp, "server.key")])
            try:
                self.assertTrue(sim.url.startswith("https://127.0.0.1:"))
                with open(os.path.join(sim.state_dir, "url")) as f:
                    self.assertEqual(f.read(), sim.url)
                client = Client(sim.url, cafile=os.path.join(tmp, "ca.pem"))
                r = client.request("POST", "/identity/v3/auth/tokens", password_auth())
                self.assertEqual(r.status, 201)
                compute = [e for e in r.body["token"]["catalog"] if e["type"] == "compute"][0]
                self.assertTrue(compute["endpoints"][0]["url"].startswith("https://"))
                hdr = {"X-Auth-Token": r.header("X-Subject-Token")}
                self.assertEqual(client.request("GET", "/compute/v2.1/flavors", headers=hdr).status, 200)
                client.close()
            finally:
                sim.stop_clean()

    def test_sigterm_kills_boot_processes(self):
        sim = Sim({"build_ms": 50, "boot": "exec"})
        client = Client(sim.url)
        try:
            tok = client.request("POST", "/identity/v3/auth/tokens", password_auth()).header("X-Subject-Token")
            hdr = {"X-Auth-Token": tok}
            script = b"#!/bin/sh\necho $$ > \"$HOME/pid\"\nexec sleep 60\n"
            r = client.request("POST", "/compute/v2.1/servers", {"server": {
                "name": "t", "flavorRef": "m1.small", "imageRef": os_config.UBUNTU_ID,
                "user_data": base64.b64encode(script).decode()}}, hdr)
            pid_file = os.path.join(sim.state_dir, "servers", r.body["server"]["id"], "pid")
            self.assertTrue(wait_for(lambda: (read_text(pid_file) or "").strip()))
            pid = int(read_text(pid_file))
            self.assertTrue(_alive(pid))
        finally:
            client.close()
            sim.stop_clean()
        self.assertTrue(wait_for(lambda: not _alive(pid)), "boot process outlived the simulator")

    def test_url_file_and_keepalive(self):
        sim = Sim()
        try:
            with open(os.path.join(sim.state_dir, "url")) as f:
                self.assertRegex(f.read(), r"^http://127\.0\.0\.1:\d+$")
            client = Client(sim.url)
            for _ in range(3):
                r = client.request("GET", "/identity/v3")
                self.assertEqual(r.status, 200)
                self.assertEqual(int(r.header("Content-Length")), len(r.raw))
            conn = client.conn
            client.request("GET", "/compute/")
            self.assertIs(client.conn, conn)  # same keep-alive connection
            client.close()
        finally:
            sim.stop_clean()

    def test_bad_config_file_is_refused(self):
        with self.assertRaises(RuntimeError):
            Sim({"boot": "sometimes"})


if __name__ == "__main__":
    unittest.main()
