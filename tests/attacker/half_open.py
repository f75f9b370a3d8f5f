# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Connects that never complete, held open: each one would hold a
reservation (a slot and a flow entry) on the agent of its domain.

    half_open.py HOST PORT COUNT SECONDS

Prints "opened N" once the connects are under way, then holds them.
"""
import socket
import sys
import time

host, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
held = []
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        continue
    held.append(s)
print("opened %d" % len(held), flush=True)
time.sleep(seconds)
