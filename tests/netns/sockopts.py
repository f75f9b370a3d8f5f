#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Socket options and TCP, with the plain socket API.

    sockopts.py server ADDR PORT CASE N   (serves N connections)
    sockopts.py client ADDR PORT CASE
    sockopts.py flood ADDR PORT N         (N deferring listeners, held)
    sockopts.py siblings ADDR PORT        (SO_REUSEPORT listeners, phases)

Both ends exit 0 only if the case behaved as TCP says it must; on failure
they print why. The test runs each case over plain TCP and with the
agents (through the tunnel, or kept on TCP where the tunnel cannot honour
the option). Cases:

  defer-accept       the listener sets TCP_DEFER_ACCEPT (30 s) after
                     listen(), as nginx does; the client speaks first and
                     must have its reply well before the deferral ends
  rcvlowat-client    the client sets SO_RCVLOWAT 1000 before connect();
                     the server sends 10 bytes, then 990: the client's
                     first recv() returns all 1000
  rcvlowat-listener  the same with the listener's SO_RCVLOWAT (inherited by
                     the accepted socket) and the roles swapped
  linger             the client sets SO_LINGER 30 s, sends 256 KiB to a
                     server that waits before it reads: close() returns
                     only after the server began to read
  oobinline          the listener sets SO_OOBINLINE; the client sends
                     "abc", "!" as urgent data, "def": the server reads
                     "abc!def"
  late               the client sets SO_RCVLOWAT after connect(): the
                     connection stays as it is; 1 MiB echoed intact

flood, run as another uid: more deferring listeners than the table of
listeners' options holds, on ports PORT to PORT+N-1, held until SIGTERM;
another uid's deferring listener opened meanwhile must still stay on TCP.

siblings: SO_REUSEPORT listeners on one port, in four phases of one
defer-accept client each, "ready N" printed once phase N's listeners are
set: (1) of two plain siblings one closed, (2) a plain and a deferring
one, (3) the deferring one closed, (4) all closed and a new listener.
"""
import os
import select
import signal
import socket
import sys
import tempfile
import time

from one_conn import fail, pattern, recv_all

DEFER_S = 30
LOWAT = 1000
LINGER_BYTES = 256 << 10
LINGER_WAIT = 1.5  # seconds the linger server waits before it reads
ECHO = 1 << 20


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listen(addr, port, case):
    lst = socket.socket(family(addr), socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if case == "rcvlowat-listener":
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, LOWAT)
    elif case == "oobinline":
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    elif case == "linger":
        # A small window, so that the client's bytes wait in its own queue.
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    lst.bind((addr, port))
    lst.listen(8)
    if case == "defer-accept":
        lst.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_S)
    print("listening", flush=True)
    return lst


def reading_mark(port):
    """Where the linger server says that it has begun to read."""
    return os.path.join(tempfile.gettempdir(), "fivc-linger-%d" % port)


def lowat_sender(s):
    """10 bytes, then the rest. The reader must be in recv() before the
    first: a TCP reader that copied some bytes and sleeps for more is woken
    only once the bytes not yet copied reach the mark (Linux 6.18.44: 990
    bytes queued, the reader asleep until its timeout), so a reader that
    found the 10 bytes already there would hang over plain TCP."""
    first = pattern(LOWAT, "lowat")
    time.sleep(0.3)
    s.sendall(first[:10])
    time.sleep(0.3)
    s.sendall(first[10:])


def lowat_reader(s):
    got = s.recv(4096)
    if got != pattern(LOWAT, "lowat"):
        fail("SO_RCVLOWAT %d: the first recv() returned %d bytes" %
             (LOWAT, len(got)))


def serve(c, case, port):
    if case == "defer-accept":
        req = c.recv(100)
        if req != b"request":
            fail("defer-accept: request %r" % req)
        c.sendall(b"reply")
    elif case == "rcvlowat-client":
        lowat_sender(c)
        recv_all(c)
    elif case == "rcvlowat-listener":
        lowat_reader(c)
    elif case == "linger":
        time.sleep(LINGER_WAIT)
        open(reading_mark(port), "w").close()
        got = recv_all(c)
        if got != pattern(LINGER_BYTES, "linger"):
            fail("linger: got %d bytes, content %s" %
                 (len(got), "differs" if got else "empty"))
    elif case == "oobinline":
        got = recv_all(c)
        if got != b"abc!def":
            fail("SO_OOBINLINE: read %r, TCP gives b'abc!def'" % got)
    elif case == "late":
        got = recv_all(c)
        if got != pattern(ECHO, "late"):
            fail("late: got %d bytes" % len(got))
        c.sendall(got)
    else:
        fail("unknown case " + case)


def client(addr, port, case):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    if case == "rcvlowat-client":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, LOWAT)
    elif case == "linger":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     (1).to_bytes(4, sys.byteorder) +
                     (30).to_bytes(4, sys.byteorder))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    t0 = time.monotonic()
    s.connect((addr, port))
    if case == "defer-accept":
        s.sendall(b"request")
        if s.recv(100) != b"reply":
            fail("defer-accept: no reply")
        took = time.monotonic() - t0
        # TCP accepts as soon as the request arrives; the deferral is 30 s.
        if took > 10:
            fail("defer-accept: reply after %.1f s" % took)
    elif case == "rcvlowat-client":
        lowat_reader(s)
    elif case == "rcvlowat-listener":
        lowat_sender(s)
    elif case == "linger":
        s.sendall(pattern(LINGER_BYTES, "linger"))
        s.close()
        if not os.path.exists(reading_mark(port)):
            fail("SO_LINGER: close() returned before the server read a byte")
        return
    elif case == "oobinline":
        for part, flags in ((b"abc", 0), (b"!", socket.MSG_OOB), (b"def", 0)):
            s.send(part, flags)
            time.sleep(0.1)
    elif case == "late":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, LOWAT)
        s.sendall(pattern(ECHO, "late"))
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        if got != pattern(ECHO, "late"):
            fail("late: echo of %d bytes" % len(got))
        return
    else:
        fail("unknown case " + case)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    s.close()


def flood(addr, port, n):
    held = []
    for p in range(port, port + n):
        lst = socket.socket(family(addr), socket.SOCK_STREAM)
        lst.bind((addr, p))
        lst.listen(1)
        lst.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_S)
        held.append(lst)
    print("holding %d" % len(held), flush=True)
    signal.pause()


def siblings(addr, port):
    def sibling(defer=False):
        lst = socket.socket(family(addr), socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        lst.bind((addr, port))
        lst.listen(8)
        if defer:
            lst.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT,
                           DEFER_S)
        return lst

    def one(phase, lsts):
        print("ready %d" % phase, flush=True)
        ready, _, _ = select.select(lsts, [], [], 60)
        if not ready:
            fail("siblings: no connection in phase %d" % phase)
        c, _ = ready[0].accept()
        serve(c, "defer-accept", port)
        c.close()

    first, second = sibling(), sibling()
    first.close()
    one(1, [second])
    second.close()
    plain, deferring = sibling(), sibling(defer=True)
    one(2, [plain, deferring])
    deferring.close()
    one(3, [plain])
    plain.close()
    one(4, [sibling()])


def main():
    role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    case = sys.argv[4] if len(sys.argv) > 4 else ""
    if role == "flood":
        flood(addr, port, int(case))
        return
    if role == "siblings":
        siblings(addr, port)
        return
    if role == "client":
        client(addr, port, case)
        print("ok", flush=True)
        return
    lst = listen(addr, port, case)
    for i in range(int(sys.argv[5])):
        if os.path.exists(reading_mark(port)):
            os.unlink(reading_mark(port))
        c, _ = lst.accept()
        serve(c, case, port)
        c.close()
        print("conn %d ok" % i, flush=True)


if __name__ == "__main__":
    main()
