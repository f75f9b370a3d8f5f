#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A writer, and a reader that pauses, for tests/netns/test_podns.sh
(what the reader's socket holds unread meanwhile).

    paused_reader.py writer ADDR PORT BYTES   listen, say "listening", send
        BYTES random bytes to one connection, close; print "sent N SHA"
    paused_reader.py reader ADDR PORT PAUSE [SLOW]   connect, read nothing
        for PAUSE seconds, say "reading", read SLOW bytes 256 KiB per 25 ms,
        say "fast", read to EOF; print "got N SHA"
"""
import hashlib
import os
import socket
import sys
import time

from one_conn import accept_one

CHUNK = 1 << 16
SLOW_STEP = 1 << 18


def writer(addr, port, n):
    c, h, left = accept_one(addr, port), hashlib.sha256(), n
    while left:
        b = os.urandom(min(CHUNK, left))
        c.sendall(b)
        h.update(b)
        left -= len(b)
    c.close()
    print("sent %d %s" % (n, h.hexdigest()), flush=True)


def reader(addr, port, pause, slow):
    s = socket.create_connection((addr, port))
    time.sleep(pause)
    print("reading", flush=True)
    h, got = hashlib.sha256(), 0
    while got < slow:
        b = s.recv(SLOW_STEP)
        if not b:
            break
        h.update(b)
        got += len(b)
        time.sleep(0.025)
    print("fast", flush=True)
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        h.update(b)
        got += len(b)
    print("got %d %s" % (got, h.hexdigest()), flush=True)


def main():
    role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "writer":
        writer(addr, port, int(sys.argv[4]))
    else:
        slow = int(sys.argv[5]) if len(sys.argv) > 5 else 0
        reader(addr, port, float(sys.argv[4]), slow)


if __name__ == "__main__":
    main()
