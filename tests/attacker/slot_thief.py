# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""An unprivileged local process against the agent's slot listener.

    slot_thief.py HOST PORT SECONDS [CONNS]

Keeps up to CONNS connections to HOST:PORT open, reconnecting as the agent
closes them, and reads whatever arrives on any of them: a connection that
the agent took for the X end of a slot would receive an app's bytes. Prints
"connects N closed_by_peer N bytes_read N" at the end.
"""
import errno
import selectors
import socket
import sys
import time

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conns = int(sys.argv[4]) if len(sys.argv) > 4 else 300
sel = selectors.DefaultSelector()
connects = closed = got = 0
deadline = time.monotonic() + seconds


def dial():
    global connects
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return
    connects += 1
    sel.register(s, selectors.EVENT_READ)


while time.monotonic() < deadline:
    while len(sel.get_map()) < conns:
        before = len(sel.get_map())
        dial()
        if len(sel.get_map()) == before:
            break
    for key, _ in sel.select(timeout=0.05):
        s = key.fileobj
        try:
            data = s.recv(65536)
        except OSError as e:
            data = b"" if e.errno != errno.EAGAIN else None
        if data is None:
            continue
        if data:
            got += len(data)
            continue
        closed += 1
        sel.unregister(s)
        s.close()
print("connects %d closed_by_peer %d bytes_read %d" % (connects, closed, got))
