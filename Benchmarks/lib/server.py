"""What the benchmarks that talk to a running server share: a replica-link gateway on a loopback port, its login,
uploads, polling and downloads, nginx beside it, and wrk's figures. Standard library only.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

PIN = "482193"


def log(tag, message):
    print(f"[{tag}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ensure_packages(tag, commands):
    """Installs the Debian packages of the commands missing here: {command: package}."""
    missing = sorted({package for command, package in commands.items()
                      if not shutil.which(command) and not os.path.exists(f"/usr/sbin/{command}")})
    if missing:
        log(tag, f"installing {', '.join(missing)} from Debian's packages")
        policy = "/usr/sbin/policy-rc.d"
        added = not os.path.exists(policy)
        if added:
            # Installing nginx must not start the system's own instance.
            with open(policy, "w") as file:
                file.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
        try:
            subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, check=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)
        finally:
            if added:
                os.remove(policy)


class Gateway:
    """`replica-link serve` with a data directory of its own, logged in."""

    def __init__(self, binaries, folder, workers=None):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        os.makedirs(folder, exist_ok=True)
        command = [os.path.join(binaries, "replica-link"), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", os.path.join(folder, "data"), "--pin", PIN]
        if workers:
            command += ["--workers", str(workers)]
        self.stderr = open(os.path.join(folder, "gateway-stderr.log"), "w")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.request("GET", "/api/health", auth=False)
                break
            except (OSError, urllib.error.URLError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("replica-link did not start; see " + self.stderr.name)
                time.sleep(0.1)
        self.token = json.loads(self.request("POST", "/api/auth", json.dumps({"pin": PIN}).encode(),
                                             {"Content-Type": "application/json"}, auth=False))["token"]

    def request(self, method, path, body=None, headers=None, auth=True, timeout=600):
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=dict(headers or {}))
        if auth:
            request.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def json(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        return json.loads(self.request(method, path, data, headers))

    def create(self, name, photos):
        """Uploads the photos (paths) as one project in one multipart request, streamed by curl; its id."""
        with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as config:
            config.write(f'url = "{self.url}/api/projects"\nheader = "Authorization: Bearer {self.token}"\n')
            config.write(f'form = "name={name}"\n')
            for photo in photos:
                config.write(f'form = "images=@{photo}"\n')
        try:
            output = subprocess.run(["curl", "-sS", "-f", "-K", config.name], capture_output=True, text=True,
                                    check=True).stdout
        finally:
            os.remove(config.name)
        return json.loads(output)["id"]

    def wait(self, project, timeout=3600):
        """Polls the project until it is neither queued nor processing; its last state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.json("GET", f"/api/projects/{project}")
            if state["status"] not in ("queued", "processing"):
                return state
            if time.monotonic() > deadline:
                raise RuntimeError(f"project {project} still {state['status']} after {timeout} s")
            time.sleep(0.5)

    def download(self, path, target):
        """curl's figures for one GET into a file: seconds and bytes."""
        output = subprocess.run(["curl", "-sS", "-f", "-o", target, "-H", "Authorization: Bearer " + self.token,
                                 "-w", "%{time_total} %{size_download}", self.url + path], capture_output=True,
                                text=True, check=True).stdout.split()
        return {"seconds": float(output[0]), "bytes": int(output[1])}

    def peak_rss_mb(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.stderr.close()


class Nginx:
    """nginx serving `root` on a loopback port: one worker, no access log, keep-alive as the gateway."""

    def __init__(self, folder, root):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        os.makedirs(os.path.join(folder, "temp"), exist_ok=True)
        configuration = os.path.join(folder, "nginx.conf")
        with open(configuration, "w") as file:
            file.write(f"""daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/json;
    keepalive_requests 1000;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
    server {{ listen 127.0.0.1:{self.port}; root {root}; }}
}}
""")
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen([binary, "-p", folder, "-c", configuration, "-e", f"{folder}/error.log"],
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start")
                time.sleep(0.1)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk(url, connections, seconds, threads=2, token=None):
    """One wrk run: requests a second, p50 and p99 in milliseconds, errors."""
    command = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if token:
        command += ["-H", "Authorization: Bearer " + token]
    text = subprocess.run(command + [url], capture_output=True, text=True, timeout=seconds + 60).stdout

    def find(pattern):
        match = re.search(pattern, text, re.M)
        return match.groups() if match else None

    def millis(value):
        number, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", value).groups()
        return float(number) * UNITS[unit]

    rate = find(r"^Requests/sec:\s+([0-9.]+)")
    if rate is None:
        raise RuntimeError("wrk gave no figures:\n" + text)
    sockets = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)") or ("0",) * 4
    non2xx = find(r"Non-2xx or 3xx responses: (\d+)") or ("0",)
    return {"requests_per_second": float(rate[0]), "p50_ms": millis(find(r"^\s+50%\s+(\S+)")[0]),
            "p99_ms": millis(find(r"^\s+99%\s+(\S+)")[0]), "errors": int(non2xx[0]) + sum(map(int, sockets))}


def unique_name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
