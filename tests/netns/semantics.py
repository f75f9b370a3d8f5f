#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""TCP semantics through the tunnel, with the plain socket API.

    semantics.py server ADDR PORT CASE
    semantics.py client ADDR PORT CASE

Both ends exit 0 only if the case behaved as TCP says it must; on failure
they print why. Cases:

  halfclose-client   client sends, shuts its write side, then reads the
                     server's reply to EOF; the server reads to EOF first
  halfclose-server   the same with the roles swapped
  rst                client sends, then aborts (SO_LINGER 0): the server
                     must see ECONNRESET, never a clean EOF
  unread-close       server reads a little and closes with data unread; the
                     client, still sending, must get EPIPE or ECONNRESET
  backpressure-MODE  server stops reading for a while; the client sends in
                     MODE (block, nonblock-poll, epoll-lt, epoll-et) and must
                     see the send side stop (blocking, EAGAIN) with bounded
                     queued bytes, then complete once the server reads; the
                     server checks every byte
"""
import os
import select
import socket
import struct
import sys
import tempfile
import time

from one_conn import accept_one, fail, halfclose_exchange, pattern, recv_all

SIZE = 1 << 20
TOTAL = 64 << 20  # backpressure volume
PAUSE = 2.0  # seconds the backpressure server does not read


def connect(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.connect((addr, port))
    return s


def halfclose(s, first):
    """The side that speaks first sends, shuts, then reads to EOF."""
    mine, theirs = pattern(SIZE, "first" if first else "second"), \
        pattern(SIZE, "second" if first else "first")
    got = halfclose_exchange(s, first, mine)
    if got != theirs:
        fail("half-close: got %d bytes, wanted %d (content %s)" %
             (len(got), len(theirs), "differs" if got else "empty"))


def rst_server(s):
    deadline, spurious = time.time() + 10, 0
    while time.time() < deadline:
        try:
            if not s.recv(1 << 16):
                fail("clean EOF after an abort: want ECONNRESET")
        except ConnectionResetError:
            if spurious:
                print("kernel: a blocking recv() returned EAGAIN %d time(s) "
                      "before ECONNRESET (tcp_bpf_recvmsg, see "
                      "docs/steering.md)" % spurious, flush=True)
            return
        except BlockingIOError:
            spurious += 1
    fail("no ECONNRESET within 10 s")


def rst_client(s):
    s.sendall(pattern(100000, "rst"))
    time.sleep(0.5)  # let the bytes arrive
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def unread_server(s):
    s.recv(1000)
    time.sleep(0.3)
    s.close()


def unread_client(s):
    chunk = pattern(SIZE, "unread")
    deadline = time.time() + 10
    try:
        while time.time() < deadline:
            s.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        return
    fail("peer closed with unread data, yet sends kept succeeding for 10 s")


def reading_mark(port):
    """Where the backpressure server says that it has begun to read."""
    return os.path.join(tempfile.gettempdir(), "fastivc-bp-reading-%d" % port)


def backpressure_server(s, port):
    time.sleep(PAUSE)
    open(reading_mark(port), "w").close()
    got = recv_all(s)
    os.unlink(reading_mark(port))  # the client looked before its EOF
    if got != pattern(TOTAL, "bp"):
        fail("backpressure: got %d bytes, content %s" %
             (len(got), "ok" if got == pattern(len(got), "bp") else "wrong"))


def backpressure_client(s, mode, port):
    data = memoryview(pattern(TOTAL, "bp"))
    off, stalled, queued_at_stall = 0, False, 0
    if mode == "block":
        # A blocking send must block (not fail) while the peer sleeps: the
        # whole volume (16x the window) cannot be sent before the server
        # has begun to read. Its mark says so, whatever the scheduler did
        # to either process meanwhile (a timed check failed under load).
        s.sendall(data)
        if not os.path.exists(reading_mark(port)):
            fail("blocking send of %d bytes finished while the peer slept" %
                 TOTAL)
        s.shutdown(socket.SHUT_WR)
        return
    s.setblocking(False)
    ep = None
    if mode.startswith("epoll"):
        ep = select.epoll()
        flags = select.EPOLLOUT | (select.EPOLLET if mode == "epoll-et" else 0)
        ep.register(s.fileno(), flags)
    spins, t0 = 0, time.time()
    while off < TOTAL:
        try:
            n = s.send(data[off:off + (1 << 16)])
            off += n
            continue
        except BlockingIOError:
            if not stalled:
                stalled, queued_at_stall = True, off
        if mode == "nonblock-poll":
            select.select([], [s], [], 5)
        else:
            if not ep.poll(5):
                fail("%s: no EPOLLOUT within 5 s at %d of %d bytes" %
                     (mode, off, TOTAL))
        spins += 1
        if time.time() - t0 > 60:
            fail("%s: not done after 60 s (%d of %d bytes)" % (mode, off, TOTAL))
    if not stalled:
        fail("%s: never saw EAGAIN while the peer did not read" % mode)
    print("queued before EAGAIN: %d bytes; waits %d" % (queued_at_stall, spins),
          flush=True)
    s.setblocking(True)
    s.shutdown(socket.SHUT_WR)


def main():
    role, addr, port, case = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        sys.argv[4]
    server = role == "server"
    # No mark of an earlier run: only this server's may be found.
    if server and os.path.exists(reading_mark(port)):
        os.unlink(reading_mark(port))
    s = accept_one(addr, port) if server else connect(addr, port)
    if case == "halfclose-client":
        halfclose(s, first=not server)
    elif case == "halfclose-server":
        halfclose(s, first=server)
    elif case == "rst":
        rst_server(s) if server else rst_client(s)
    elif case == "unread-close":
        unread_server(s) if server else unread_client(s)
    elif case.startswith("backpressure-"):
        if server:
            backpressure_server(s, port)
        else:
            backpressure_client(s, case[len("backpressure-"):], port)
    else:
        fail("unknown case " + case)
    print("ok", flush=True)


if __name__ == "__main__":
    main()
