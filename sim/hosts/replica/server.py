"""A replica's model server (a stand-in for vLLM): checks the weights, holds the model's
memory, answers ``GET /health`` and ``GET /v1/models``.

Usage: ``python3 server.py --model DIR/weights --port PORT`` (it works in its own folder).
Exit status 2 when the weights are missing or corrupt, 3 when the port is taken; killed by
the kernel when the memory it holds is over the host's cap. It tells the controller it
started; whether it answers is for the controller's own probe to find.
"""

import hashlib
import http.server
import json
import os
import socket
import sys
import threading

CONTROL_SOCKET = "/run/replisim/ctl.sock"


def option(name, default=None):
    args = sys.argv[1:]
    if name not in args:
        return default
    at = args.index(name) + 1
    return args[at] if at < len(args) else ""


def say(sock, **message):
    sock.sendall((json.dumps(message) + "\n").encode())


def weights_ok(config):
    path = config.get("weights", "weights/model.safetensors")
    try:
        if os.path.getsize(path) != config["weights_bytes"]:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == config["weights_sha256"]


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # the standard library's name for it
        ok = self.path in ("/health", "/v1/models")
        body = b'{"status": "ok"}\n' if ok else b'{"error": "not found"}\n'
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    port_text = option("--port", "8000")
    if not port_text.isdigit():
        print(
            f"server.py: error: argument --port: invalid int value: '{port_text}'", file=sys.stderr
        )
        sys.exit(2)
    port = int(port_text)
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    with open("config.json") as fh:
        config = json.load(fh)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.connect(CONTROL_SOCKET)
    say(ctl, op="hello", role="server", pid=os.getpid(), path=os.getcwd(), port=port)
    if not weights_ok(config):
        print("error: weights missing or corrupt (size or sha256 differ)", file=sys.stderr)
        say(ctl, op="refused", reason="weights missing or corrupt")
        sys.exit(2)
    # The model in memory: every page written, so the host's memory cap counts it.
    held = bytearray(b"\x01") * int(config["memory_bytes"])
    try:
        httpd = http.server.ThreadingHTTPServer(("0.0.0.0", port), Health)
    except OSError as err:
        print(
            f"OSError: [Errno {err.errno}] error while attempting to bind on address "
            f"('0.0.0.0', {port}): {str(err.strerror).lower()}",
            file=sys.stderr,
        )
        say(ctl, op="refused", reason=f"port {port}: {err.strerror}")
        sys.exit(3)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    say(ctl, op="ready", memory=len(held))
    print(f"serving on port {port}", flush=True)
    # Live as long as the controller listens; the socket closing tells it we are gone.
    while ctl.recv(4096):
        pass


if __name__ == "__main__":
    main()
