#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A server blocked on a slow reader: what its waiting costs in CPU.

    blocked_writer.py server ADDR PORT STYLE   (one connection)
    blocked_writer.py client ADDR PORT PAUSE
    blocked_writer.py redis ADDR PORT PAUSE    (GET big from a redis-server)

The server writes 32 MiB in 64 KiB sends, waiting for room in STYLE
(blocking, poll, select, epoll-lt, epoll-et) and prints "cpu_s X", the CPU
seconds it used for the whole transfer. The client reads nothing for PAUSE
seconds, then everything, and prints "got N". As "redis" it asks first for
the value of the key "big" and prints the value's length.
"""
import resource
import select
import socket
import sys
import time

TOTAL = 32 << 20
CHUNK = 64 << 10


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def wait_writable(c, style, ep):
    if style == "poll":
        p = select.poll()
        p.register(c, select.POLLOUT)
        p.poll()
    elif style == "select":
        select.select([], [c], [])
    else:
        ep.poll()


def serve(c, style):
    buf, sent = b"w" * CHUNK, 0
    ep = None
    if style != "blocking":
        c.setblocking(False)
    if style.startswith("epoll"):
        ep = select.epoll()
        ep.register(c, select.EPOLLOUT |
                    (select.EPOLLET if style == "epoll-et" else 0))
    start = cpu_s()
    while sent < TOTAL:
        try:
            sent += c.send(buf[:min(CHUNK, TOTAL - sent)])
        except BlockingIOError:
            wait_writable(c, style, ep)
    c.shutdown(socket.SHUT_WR)
    c.setblocking(True)
    c.recv(1)  # the client's EOF: everything was read
    print("cpu_s %.3f" % (cpu_s() - start), flush=True)


def redis_value(s):
    """The length of a bulk reply ("$N", CRLF, N bytes, CRLF), once read."""
    buf = b""
    while b"\r\n" not in buf:
        b = s.recv(64)
        if not b:
            return -1
        buf += b
    line, rest = buf.split(b"\r\n", 1)
    want, got = int(line[1:]) + 2, len(rest)
    while got < want:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
    return got - 2


def main():
    role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    if role == "server":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        print("listening", flush=True)
        serve(s.accept()[0], sys.argv[4])
        return
    s.connect((addr, port))
    if role == "redis":
        s.sendall(b"GET big\r\n")
        time.sleep(float(sys.argv[4]))
        print("got %d" % redis_value(s), flush=True)
        return
    time.sleep(float(sys.argv[4]))
    got = 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
    print("got %d" % got, flush=True)


if __name__ == "__main__":
    main()
