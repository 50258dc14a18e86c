#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Bad HTTP clients, many sockets in one process: IDLE connections that never send a byte, and SLOW ones
that send a request line and then one header line every --drip seconds, never finishing. Either kind is
opened again as soon as the server closes it, so the count is held for --seconds. Standard library only.

Prints one JSON object when done: how many of each were open (sampled every second after the first
--warmup seconds: min and median), how often the server closed one (reconnects), and connects that failed.

    http_clients.py --host 127.0.0.1 --port 9641 --idle 1000 --slow 200 --seconds 60
"""
import argparse
import json
import selectors
import socket
import statistics
import sys
import time


class Conn:
    __slots__ = ("kind", "sock", "connected", "next_drip", "lines")

    def __init__(self, kind):
        self.kind = kind
        self.sock = None
        self.connected = False
        self.next_drip = 0.0
        self.lines = 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--idle", type=int, default=0)
    p.add_argument("--slow", type=int, default=0)
    p.add_argument("--drip", type=float, default=1.0, help="seconds between a slow client's header lines")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--ready-file", help="written once every connection was opened the first time")
    a = p.parse_args()

    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    sel = selectors.DefaultSelector()
    conns = [Conn("idle") for _ in range(a.idle)] + [Conn("slow") for _ in range(a.slow)]
    stats = {"reconnects": {"idle": 0, "slow": 0}, "connect_errors": 0}
    samples = {"idle": [], "slow": []}
    retry = []  # (time, conn): a failed connect is tried again 0.1 s later, not in a tight loop

    def close(c):
        if c.sock is not None:
            sel.unregister(c.sock)
            c.sock.close()
        c.sock, c.connected = None, False

    def open_(c, now):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect((a.host, a.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            stats["connect_errors"] += 1
            retry.append((now + 0.1, c))
            return
        c.sock, c.connected, c.lines = s, False, 0
        sel.register(s, selectors.EVENT_WRITE, c)

    def established(c, now):
        c.connected = True
        sel.modify(c.sock, selectors.EVENT_READ, c)
        if c.kind == "slow":
            send(c, b"GET /metrics HTTP/1.1\r\nHost: ctbpf\r\n")
            c.next_drip = now + a.drip

    def send(c, data):
        try:
            c.sock.send(data)
            return True
        except OSError:
            return False

    start = time.monotonic()
    end = start + a.seconds
    for c in conns:
        open_(c, start)
    ready_written = False
    next_sample = start + a.warmup
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for key, events in sel.select(timeout=0.05):
            c = key.data
            if not c.connected:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    close(c)
                    stats["connect_errors"] += 1
                    retry.append((now + 0.1, c))
                else:
                    established(c, now)
                continue
            # Readable: the server closed it (EOF or reset), or answered (a slow one cut short with an
            # error page): either way, it is opened again.
            try:
                c.sock.recv(65536)
            except OSError:
                pass
            close(c)
            stats["reconnects"][c.kind] += 1
            open_(c, now)
        for c in conns:
            if c.kind == "slow" and c.connected and now >= c.next_drip:
                c.lines += 1
                if not send(c, b"X-Slow-%d: %s\r\n" % (c.lines, b"a" * 16)):
                    close(c)
                    stats["reconnects"]["slow"] += 1
                    open_(c, now)
                else:
                    c.next_drip = now + a.drip
        if retry:
            due = [r for r in retry if r[0] <= now]
            retry[:] = [r for r in retry if r[0] > now]
            for _, c in due:
                open_(c, now)
        if not ready_written and a.ready_file and all(c.connected for c in conns):
            with open(a.ready_file, "w") as f:
                f.write("%.1f\n" % (now - start))
            ready_written = True
        if now >= next_sample:
            for kind in samples:
                samples[kind].append(sum(1 for c in conns if c.kind == kind and c.connected))
            next_sample += 1.0
    for c in conns:
        close(c)
    out = {"seconds": round(time.monotonic() - start, 1), **stats}
    for kind, xs in samples.items():
        out["open_" + kind] = {"min": min(xs) if xs else 0, "median": statistics.median(xs) if xs else 0}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
