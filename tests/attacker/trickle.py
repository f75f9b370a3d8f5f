# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Slow clients against one of the agent's listeners, from one process:
#
#   trickle.py tcp HOST:PORT | unix PATH  MODE N SECONDS
#
# MODE: "metrics" trickles an HTTP request that never ends, "control" a
# status request that never gets its newline, one byte every 150 ms each;
# "idle" connects and says nothing; "large" sends 4 KiB at once, over
# any request bound. A client the agent drops (or that it answers) is
# counted and reconnects at once. Prints one JSON line at the end.
import errno
import json
import select
import socket
import sys
import time

kind, where, mode, n, seconds = sys.argv[1:6]
n, seconds = int(n), float(seconds)
INTERVAL = 0.15
if kind == "tcp":
    host, port = where.rsplit(":", 1)
    fam, addr = socket.AF_INET, (host, int(port))
else:
    fam, addr = socket.AF_UNIX, where
head = {"metrics": b"GET /metrics HTTP/1.0\r\nX-Trickle: ",
        "control": b"status json", "idle": b"", "large": b"x" * 4096}[mode]
st = {"connects": 0, "connect_errors": {}, "dropped": 0, "answered": 0,
      "bytes_sent": 0}
conns = {}  # socket -> [bytes sent, next send time]


def connect():
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(addr)
    except BlockingIOError:
        pass
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno))
        st["connect_errors"][name] = st["connect_errors"].get(name, 0) + 1
        s.close()
        return False
    st["connects"] += 1
    conns[s] = [0, time.monotonic()]
    return True


def drop(s, answered):
    st["answered" if answered else "dropped"] += 1
    del conns[s]
    s.close()


end = time.monotonic() + seconds
while time.monotonic() < end:
    while len(conns) < n:
        if not connect():
            time.sleep(0.05)  # refused: not a busy loop
            break
    now = time.monotonic()
    for s, c in list(conns.items()):
        if mode == "idle" or now < c[1]:
            continue
        if mode == "large":
            data = head
        else:
            data = head[c[0]:c[0] + 1] if c[0] < len(head) else b"a"
        try:
            c[0] += s.send(data)
            st["bytes_sent"] += len(data)
        except BlockingIOError:
            pass
        except OSError:
            drop(s, False)
            continue
        c[1] = now + (3600 if mode == "large" else INTERVAL)
    r, _, _ = select.select(list(conns), [], [], 0.02)
    for s in r:
        try:
            data = s.recv(65536)
        except OSError:
            drop(s, False)
            continue
        if not data:
            drop(s, False)
        else:
            # Any reply (an error page) ends the client as well.
            while data:
                try:
                    data = s.recv(65536)
                except OSError:
                    break
            drop(s, True)
print(json.dumps(st), flush=True)
