#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Apps for a flow whose agent dies while its peer agent cannot help.

fin-writer HOST PORT N GO: accept one connection; once the file GO exists,
send N bytes and close (our FIN follows the bytes).
reader HOST PORT: connect, read until EOF or an error; print how much and
how it ended ("eof" or the errno name). EAGAIN is read past (a blocking
reader gets one before a reset, see docs/steering.md).
counter-receiver HOST PORT: accept one connection and read a stream of
4-byte big-endian counters (0, 1, 2, ...) until EOF or an error; print how
much arrived, whether it was contiguous, and how it ended.
counter-sender HOST PORT SECONDS: connect, send that stream for SECONDS,
going on after errors (as a careless app would); print what it sent.
"""
import errno
import os
import socket
import struct
import sys
import time

CHUNK = 1 << 16


def listen(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    lst = socket.socket(fam, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((host, port))
    lst.listen(1)
    print("listening", flush=True)
    c, _ = lst.accept()
    return c


def ending(e):
    return "eof" if e is None else errno.errorcode.get(e.errno, str(e.errno))


def fin_writer(host, port, n, go):
    c = listen(host, port)
    while not os.path.exists(go):
        time.sleep(0.01)
    c.sendall(b"f" * n)
    c.close()


def reader(host, port):
    c = socket.create_connection((host, port))
    got, err, eagain = 0, None, 0
    while True:
        try:
            b = c.recv(CHUNK)
        except BlockingIOError:  # once before a reset: docs/steering.md
            eagain += 1
            continue
        except OSError as e:
            err = e
            break
        if not b:
            break
        got += len(b)
    print("read %d, then %s (%d EAGAIN)" % (got, ending(err), eagain), flush=True)


def counters(start, n):
    return b"".join(struct.pack(">I", (start + i) & 0xFFFFFFFF) for i in range(n))


def counter_receiver(host, port):
    c = listen(host, port)
    got, err, contiguous, pending = 0, None, True, b""
    try:
        while True:
            b = c.recv(CHUNK)
            if not b:
                break
            pending += b
            whole = len(pending) // 4 * 4
            if pending[:whole] != counters(got // 4, whole // 4):
                contiguous = False
            got += whole
            pending = pending[whole:]
    except OSError as e:
        err = e
    print("received %d, %s, then %s" % (got, "contiguous" if contiguous else "GAP", ending(err)), flush=True)


def counter_sender(host, port, seconds):
    c = socket.create_connection((host, port))
    sent, errors, first = 0, 0, None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        buf = counters(sent // 4, CHUNK // 4)
        off = sent % 4
        try:
            n = c.send(buf[off:])
            sent += n
        except OSError as e:
            errors += 1
            first = first or ending(e)
            time.sleep(0.01)
    print("sent %d, %d send errors (first %s)" % (sent, errors, first), flush=True)


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "fin-writer":
        fin_writer(host, port, int(sys.argv[4]), sys.argv[5])
    elif mode == "reader":
        reader(host, port)
    elif mode == "counter-receiver":
        counter_receiver(host, port)
    else:
        counter_sender(host, port, float(sys.argv[4]))
