"""Another local user's attempts on someone else's riffd (for tests/reliability/test_other_user.py).

Runs as uid 65534 on Debian's /usr/bin/python3 with python3-zmq, so it imports nothing from riffd
(the project's .venv is out of that user's reach). ``python3 other_user_probe.py PLAN.json``
makes every attempt of the plan at once, one thread each, and prints one JSON object: this
user's uid, the CURVE public key it made for itself, and per attempt what happened and how many
replies or events it got (anything but 0 is a breach).
"""
import json
import os
import socket
import sys
import threading

import zmq


def unix_connect(path):
    """connect(2) to a unix socket: the kernel's answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect(path)
        return "CONNECTED", 1
    except OSError as e:
        return f"{type(e).__name__}: errno {e.errno} ({os.strerror(e.errno)})", 0
    finally:
        s.close()


def list_folder(path):
    try:
        return f"LISTED {os.listdir(path)}", 1
    except OSError as e:
        return f"{type(e).__name__}: errno {e.errno} ({os.strerror(e.errno)})", 0


def secure(sock, keys, server_key):
    if keys is not None:
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey, sock.curve_secretkey = keys


def request(ctx, endpoint, payload, keys, server_key, wait_s):
    """Send one request from a DEALER; the reply, if one comes within ``wait_s`` seconds."""
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        secure(sock, keys, server_key)
        sock.connect(endpoint)
        try:
            sock.send(payload.encode(), zmq.NOBLOCK)
        except zmq.Again:
            return "could not even queue the request", 0
        if sock.poll(int(wait_s * 1000)):
            return "REPLY " + sock.recv_multipart()[-1].decode(errors="replace")[:200], 1
        return f"no reply within {wait_s:g} s", 0
    finally:
        sock.close()


def listen(ctx, endpoint, keys, server_key, wait_s):
    """Subscribe to everything for ``wait_s`` seconds; count what arrives."""
    sock = ctx.socket(zmq.SUB)
    sock.linger = 0
    got = 0
    try:
        secure(sock, keys, server_key)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(endpoint)
        polls = int(wait_s / 0.1)
        for _ in range(polls):
            if sock.poll(100):
                sock.recv_multipart()
                got += 1
        return (f"{got} events in {wait_s:g} s" if got else f"no events in {wait_s:g} s"), got
    finally:
        sock.close()


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    ctx = zmq.Context()
    own = zmq.curve_keypair()          # a key of this user's own, never allowed by the owner
    server_key = plan["tcp_server_key"]
    results = []
    lock = threading.Lock()

    def attempt(name, fn, *args):
        try:
            outcome, got = fn(*args)
        except Exception as e:          # an attempt that blew up got nothing either
            outcome, got = f"error {type(e).__name__}: {e}", 0
        with lock:
            results.append({"attempt": name, "outcome": outcome, "got": got})

    jobs = [
        ("list the owner's ipc socket folder", list_folder, plan["ipc_dir"]),
        ("connect(2) to the ipc control socket", unix_connect, plan["ipc_dir"] + "/control"),
        ("connect(2) to the ipc events socket", unix_connect, plan["ipc_dir"] + "/events"),
    ]
    for cmd, payload in plan["requests"].items():
        jobs.append((f"ipc control: {cmd}", request, ctx, plan["ipc_control"], payload, None,
                     server_key, plan["wait_s"]))
        for label, keys in (("no keys", None), ("a key of its own", own)):
            jobs.append((f"tcp+CURVE control, {label}: {cmd}", request, ctx, plan["tcp_control"],
                         payload, keys, server_key, plan["wait_s"]))
    jobs.append(("ipc events: subscribe while notes play", listen, ctx, plan["ipc_events"], None,
                 server_key, plan["listen_s"]))
    for label, keys in (("no keys", None), ("a key of its own", own)):
        jobs.append((f"tcp+CURVE events, {label}: subscribe while notes play", listen, ctx,
                     plan["tcp_events"], keys, server_key, plan["listen_s"]))
    threads = [threading.Thread(target=attempt, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctx.term()
    print(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "key": own[0].decode(),
                      "attempts": sorted(results, key=lambda r: r["attempt"])}))


if __name__ == "__main__":
    main()
