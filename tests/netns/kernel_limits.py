#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What the kernel decides for a steered socket, case by case, with the
plain socket API (docs/steering.md, "What the kernel sets").

    kernel_limits.py server ADDR PORT CASE
    kernel_limits.py client ADDR PORT CASE

Each end prints one line, "OUTCOME <side> <what happened>"; the test
compares the lines over plain TCP and through the tunnel. Cases:

  waitall   recv(2000, MSG_WAITALL) while the server sends 1000 bytes,
            waits, sends 1000 more
  oob       the client sends "abc", "!" as urgent data, "def"; the server
            reads the urgent byte with MSG_OOB, then the stream
  shutrd    the client shuts its read side, then reads what came before
            and after
  splice    the server splice()s 100000 bytes from its socket into a pipe
  splice2   the same twice, two connections to one listener (after the
            first splice(), the listener's later connections take TCP)
  sendfile  the server sendfile()s 1 MiB; the client checks it
  tcpinfo   after 5000 bytes each way: TCP_INFO's bytes_acked on the
            sender, bytes_received and FIONREAD on the receiver
"""
import fcntl
import os
import socket
import struct
import sys
import tempfile
import termios
import time

from one_conn import listener, pattern, recv_all

# struct tcp_info: tcpi_bytes_acked, tcpi_bytes_received (u64, Linux 4.1+)
TCPI_BYTES_ACKED = 120


def outcome(side, what):
    print("OUTCOME %s %s" % (side, what), flush=True)


def tcpi_bytes(s):
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("QQ", info, TCPI_BYTES_ACKED)


def splice_all(c, seconds):
    """What splice() moves from C into a pipe within SECONDS, to EOF."""
    r, w = os.pipe()
    c.setblocking(False)
    moved, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            n = os.splice(c.fileno(), w, 65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if n == 0:
            break
        moved += n
        os.read(r, n)
    return moved


def server(c, case):
    if case == "waitall":
        c.sendall(b"a" * 1000)
        time.sleep(0.3)
        c.sendall(b"b" * 1000)
    elif case == "oob":
        time.sleep(0.5)
        try:
            urgent = c.recv(1, socket.MSG_OOB)
        except OSError as e:
            urgent = e.strerror
        outcome("server", "urgent %r stream %r" % (urgent, recv_all(c)))
    elif case == "shutrd":
        c.sendall(b"x" * 100)
        time.sleep(0.5)
        c.sendall(b"y" * 100)
    elif case == "splice":
        outcome("server", "spliced %d of 100000" % splice_all(c, 2.0))
    elif case == "splice2":
        return splice_all(c, 2.0)
    elif case == "sendfile":
        with tempfile.TemporaryFile() as f:
            f.write(pattern(1 << 20, "sendfile"))
            f.flush()
            sent = os.sendfile(c.fileno(), f.fileno(), 0, 1 << 20)
        outcome("server", "sendfile %d" % sent)
    elif case == "tcpinfo":
        c.sendall(b"s" * 5000)
        time.sleep(0.5)
        inq = struct.unpack("i", fcntl.ioctl(c.fileno(), termios.FIONREAD,
                                             b"\0" * 4))[0]
        outcome("server", "FIONREAD %d bytes_received %d" %
                (inq, tcpi_bytes(c)[1]))


def client(s, case):
    if case == "waitall":
        outcome("client", "MSG_WAITALL got %d of 2000" %
                len(s.recv(2000, socket.MSG_WAITALL)))
    elif case == "oob":
        for part, flags in ((b"abc", 0), (b"!", socket.MSG_OOB), (b"def", 0)):
            s.send(part, flags)
            time.sleep(0.1)
    elif case == "shutrd":
        time.sleep(0.1)
        s.shutdown(socket.SHUT_RD)
        before = len(s.recv(1000))
        time.sleep(0.7)
        outcome("client", "after SHUT_RD read %d then %d" %
                (before, len(s.recv(1000))))
    elif case in ("splice", "splice2"):
        s.sendall(b"z" * 100000)
    elif case == "sendfile":
        got = recv_all(s)
        outcome("client", "got %d, %s" %
                (len(got), "intact" if got == pattern(1 << 20, "sendfile")
                 else "differs"))
        return
    elif case == "tcpinfo":
        s.sendall(b"c" * 5000)
        time.sleep(0.5)
        outcome("client", "bytes_acked %d" % tcpi_bytes(s)[0])
        time.sleep(0.5)  # our FIN after the server looked
    s.shutdown(socket.SHUT_WR)
    recv_all(s)


def main():
    role, addr, port, case = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        sys.argv[4]
    conns = 2 if case == "splice2" else 1
    if role == "server":
        lis = listener(addr, port)
        moved = []
        for _ in range(conns):
            c, _ = lis.accept()
            moved.append(server(c, case))
            c.shutdown(socket.SHUT_WR)
            recv_all(c)
        if case == "splice2":
            outcome("server", "spliced %d then %d of 100000" % tuple(moved))
    else:
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        for _ in range(conns):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.connect((addr, port))
            client(s, case)


if __name__ == "__main__":
    main()
