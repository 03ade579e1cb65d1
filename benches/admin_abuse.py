#!/usr/bin/env python3
"""Abuse of sluice's admin port for the BENCHMARKS.md comparison: up to 2,000
connections kept open (reopened as they close) and requests with 1 GiB bodies,
for SECONDS. Usage: admin_abuse.py PORT SECONDS (raise `ulimit -n` first)."""
import socket, sys, time, threading
port = int(sys.argv[1]); seconds = float(sys.argv[2])
end = time.time() + seconds
socks = []
def idle():
    while time.time() < end:
        while len(socks) < 2000 and time.time() < end:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                socks.append(s)
            except Exception:
                time.sleep(0.01)
        # drop the ones the server closed
        alive = []
        for s in socks:
            try:
                s.setblocking(False)
                if s.recv(1) == b"":
                    s.close(); continue
            except BlockingIOError:
                pass
            except Exception:
                s.close(); continue
            alive.append(s)
        socks[:] = alive
        time.sleep(0.05)
def slow_and_huge():
    while time.time() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
            s.settimeout(0.5)
            for _ in range(64):
                s.sendall(b"x" * 65536)
        except Exception:
            pass
threading.Thread(target=idle, daemon=True).start()
threading.Thread(target=slow_and_huge, daemon=True).start()
while time.time() < end:
    time.sleep(0.2)
print("abuse: held", len(socks), "connections at the end")
