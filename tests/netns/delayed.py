#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A client that connects, waits, then sends; a server that answers.

server HOST PORT: accept one connection, read to EOF, answer with the
SHA-256 of what it read and then N bytes of its own, close.
client HOST PORT DELAY N: connect, sleep DELAY s, send N seeded bytes,
shut down writing, read the answer to EOF; exit 0 only if the server saw
exactly our bytes and we got exactly its N bytes.
"""
import hashlib
import random
import socket
import sys
import time

from one_conn import accept_one, recv_all


def payload(n, seed):
    return random.Random(seed).randbytes(n)


def server(host, port, n):
    c = accept_one(host, port)
    got = recv_all(c)
    c.sendall(hashlib.sha256(got).digest() + payload(n, 2))
    c.close()


def client(host, port, delay, n):
    data = payload(n, 1)
    c = socket.create_connection((host, port))
    time.sleep(delay)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    ans = recv_all(c)
    ok = ans[:32] == hashlib.sha256(data).digest() and ans[32:] == payload(n, 2)
    print("client: sent %d, got %d, %s" % (n, len(ans) - 32, "ok" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
                        int(sys.argv[5])))
