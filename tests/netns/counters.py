#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A one-way stream whose every byte the receiver can check: 4-byte
big-endian counters 0, 1, 2, ... A lost, doubled or reordered byte shows
as a gap; the count at the end shows a short stream.

receive HOST PORT: accept one connection, read until EOF or an error;
print "received N, contiguous|GAP, then eof|ERRNO".
send HOST PORT SECONDS [STOP]: connect and send the stream until SECONDS
have passed or the file STOP exists, then shut down and close. Going on
after errors, as a careless app would; print "sent N, E send errors
(first ERRNO)".
"""
import os
import socket
import struct
import sys
import time

from one_conn import accept_one, ending

CHUNK = 1 << 16


def counters(start, n):
    return b"".join(struct.pack(">I", (start + i) & 0xFFFFFFFF) for i in range(n))



def receive(host, port):
    c = accept_one(host, port)
    got, err, contiguous, pending = 0, None, True, b""
    while True:
        try:
            b = c.recv(CHUNK)
        except BlockingIOError:  # once before a reset: docs/steering.md
            continue
        except OSError as e:
            err = e
            break
        if not b:
            break
        pending += b
        whole = len(pending) // 4 * 4
        if pending[:whole] != counters(got // 4, whole // 4):
            contiguous = False
        got += whole
        pending = pending[whole:]
    if pending != counters(got // 4, 1)[: len(pending)]:
        contiguous = False
    got += len(pending)
    print("received %d, %s, then %s" % (got, "contiguous" if contiguous else "GAP", ending(err)), flush=True)


def send(host, port, seconds, stop):
    c = socket.create_connection((host, port))
    # A send may wait for room at most 1 s: the deadline is checked between.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 1, 0))
    sent, errors, first = 0, 0, None
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (stop and os.path.exists(stop)):
        buf = counters(sent // 4, CHUNK // 4)
        try:
            sent += c.send(buf[sent % 4:])
        except BlockingIOError:
            pass
        except OSError as e:
            errors += 1
            first = first or ending(e)
            time.sleep(0.01)
    try:
        c.shutdown(socket.SHUT_WR)
        c.close()
    except OSError:
        pass
    print("sent %d, %d send errors (first %s)" % (sent, errors, first), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "receive":
        receive(sys.argv[2], int(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
