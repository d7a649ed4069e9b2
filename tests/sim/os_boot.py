"""Boot emulation of the OpenStack simulator: the per-server directory
DIR/servers/<id>/ (console.log, user-data, metadata.json, floating_ip) and,
in boot "exec" mode, the user-data script run as a real local process in its
own session (cloud-init stand-in). Deleting the server SIGKILLs its group and
every process that still carries the server's ORC_SIM_SERVER_ID (what the script
started in sessions of their own, such as gpu-agent's workloads): a destroyed VM
leaves nothing running."""

import json
import os
import signal
import subprocess

from os_util import atomic_write

BOOT_BANNER = [
    "[    0.000000] Linux version 5.15.0-openstack-sim (simulated kernel)",
    "[    0.412000] Run /sbin/init as init process",
    "[    2.103000] cloud-init[412]: Cloud-init v. 23.1 running 'init-local'",
    "[    3.220000] cloud-init[498]: Cloud-init v. 23.1 running 'init'",
]
CLOUD_CONFIG_LINE = "cloud-init: cloud-config ignored by the simulator"


def kill_tagged(server_id):
    """SIGKILLs the processes whose environment holds ORC_SIM_SERVER_ID=server_id;
    how many there were."""
    tag = ("ORC_SIM_SERVER_ID=%s" % server_id).encode()
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if tag in env:
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


class BootManager:
    def __init__(self, state_dir):
        self.root = os.path.join(state_dir, "servers")
        self.procs = {}  # server id -> Popen

    def server_dir(self, server_id):
        path = os.path.join(self.root, server_id)
        os.makedirs(path, exist_ok=True)
        return path

    def console_path(self, server_id):
        return os.path.join(self.server_dir(server_id), "console.log")

    def append_console(self, server_id, lines):
        with open(self.console_path(server_id), "a") as f:
            for line in lines:
                f.write(line + "\n")

    def console_tail(self, server_id, length):
        try:
            with open(self.console_path(server_id), errors="replace") as f:
                lines = f.read().splitlines(True)
        except OSError:
            return ""
        if length is not None and length >= 0:
            lines = lines[-length:] if length else []
        return "".join(lines)

    def write_metadata(self, server_id, metadata):
        path = os.path.join(self.server_dir(server_id), "metadata.json")
        atomic_write(path, json.dumps(metadata, sort_keys=True))
        return path

    def write_floating_ip(self, server_id, address):
        atomic_write(os.path.join(self.server_dir(server_id), "floating_ip"), address or "")

    def boot(self, server, fixed_ip, floating_ip, user_data, mode):
        """Called when a server turns ACTIVE: console banner, then user data."""
        sid = server["id"]
        self.append_console(sid, BOOT_BANNER + ["ci-info: eth0 %s" % (fixed_ip or "-")])
        meta_path = self.write_metadata(sid, server["metadata"])
        self.write_floating_ip(sid, floating_ip)
        if mode != "exec" or not user_data:
            return
        if user_data.startswith(b"#cloud-config"):
            self.append_console(sid, [CLOUD_CONFIG_LINE])
        elif user_data.startswith(b"#!"):
            env = {"ORC_SIM_SERVER_ID": sid, "ORC_SIM_SERVER_NAME": server["name"],
                   "ORC_SIM_FIXED_IP": fixed_ip or "", "ORC_SIM_FLOATING_IP": floating_ip or "",
                   "ORC_SIM_METADATA": meta_path}
            self.spawn(sid, user_data, env)

    def spawn(self, server_id, script, extra_env):
        home = self.server_dir(server_id)
        path = os.path.join(home, "user-data")
        with open(path, "wb") as f:
            f.write(script)
        os.chmod(path, 0o755)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
        env.update(extra_env)
        with open(self.console_path(server_id), "ab") as log:
            try:
                self.procs[server_id] = subprocess.Popen(
                    [path], cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
            except OSError as exc:
                log.write(("cloud-init: user-data failed to start: %s\n" % exc).encode())

    def kill(self, server_id):
        """A destroyed VM: SIGKILL the whole process group and every process
        that carries the server's id in its environment, then reap."""
        proc = self.procs.pop(server_id, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for _ in range(3):  # what was forking meanwhile is caught by the next pass
            if not kill_tagged(server_id):
                break
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def kill_all(self):
        for server_id in list(self.procs):
            self.kill(server_id)

    def live_count(self):
        return sum(1 for proc in self.procs.values() if proc.poll() is None)
