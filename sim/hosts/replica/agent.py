"""A replica's agent process: registers with the controller, heartbeats, reports SIGTERM.

Usage: ``python3 agent.py --port PORT`` from the bundle folder (``PORT``: its model
server's). The agent's mind runs in the controller, which acts in this host through
commands; this process is what makes the replica a live, separate process here.
"""

import json
import os
import signal
import socket
import sys
import threading
import time

CONTROL_SOCKET = "/run/replisim/ctl.sock"
HEARTBEAT_S = 1.0
lock = threading.Lock()


def say(sock, **message):
    with lock:
        sock.sendall((json.dumps(message) + "\n").encode())


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 8000
    with open("config.json") as fh:
        config = json.load(fh)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.connect(CONTROL_SOCKET)
    if config.get("catches_sigterm"):
        signal.signal(signal.SIGTERM, lambda *_: say(ctl, op="sigterm"))
    say(
        ctl,
        op="hello",
        role="agent",
        pid=os.getpid(),
        path=os.getcwd(),
        port=port,
        parent=config.get("replica"),
        spec=config.get("spec", 0),
    )
    reply = ctl.makefile("r").readline()
    if not reply:
        sys.exit(1)
    config["replica"] = json.loads(reply)["name"]
    with open("config.json.tmp", "w") as fh:
        json.dump(config, fh, indent=1)
    os.replace("config.json.tmp", "config.json")
    print(f"registered as {config['replica']}", flush=True)

    def beat():
        while True:
            time.sleep(HEARTBEAT_S)
            say(ctl, op="beat")

    threading.Thread(target=beat, daemon=True).start()
    while ctl.recv(4096):  # the controller never writes again; EOF: it is gone
        pass


if __name__ == "__main__":
    main()
