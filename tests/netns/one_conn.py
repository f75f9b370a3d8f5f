# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What the netns test programs share: a listener, one accepted
connection, a stream read to its end, a deterministic pattern, a failure,
and how a stream ended, in words."""
import errno
import hashlib
import socket
import sys


def listener(host, port, backlog=1):
    """Listen on HOST PORT and say "listening" (the tests wait for it)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    lst = socket.socket(fam, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((host, port))
    lst.listen(backlog)
    print("listening", flush=True)
    return lst


def accept_one(host, port):
    """The first connection to a listener on HOST PORT."""
    c, _ = listener(host, port).accept()
    return c


def ending(e):
    """"eof" for None, else the OSError's errno name."""
    return "eof" if e is None else errno.errorcode.get(e.errno, str(e.errno))


def recv_all(s):
    """Everything until EOF."""
    chunks = []
    while True:
        b = s.recv(1 << 16)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def halfclose_exchange(s, first, mine):
    """The side that speaks first sends MINE and shuts its write side,
    then reads to EOF; the other reads to EOF first. Returns what came."""
    if first:
        s.sendall(mine)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)
    got = recv_all(s)
    s.sendall(mine)
    s.shutdown(socket.SHUT_WR)
    return got


def pattern(n, seed):
    """n bytes of a cheap deterministic pattern."""
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
    return (block * (n // len(block) + 1))[:n]


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)
