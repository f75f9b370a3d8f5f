# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Request/response with content checks, for tests/netns/test_polling.sh.

  echo_check.py server HOST PORT     echo every byte of one connection
  echo_check.py client HOST PORT N   N requests of 1 B to 64 KiB (seeded
                                     sizes and bytes), each answered whole
                                     and equal; exit 0, or 1 with the first
                                     difference; prints "ok N BYTES"
"""
import random
import socket
import sys

from one_conn import accept_one


def server(host, port):
    c = accept_one(host, port)
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        c.sendall(b)
    c.close()


def client(host, port, n):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rnd = random.Random(7)
    total = 0
    for i in range(n):
        size = rnd.choice((1, 64, 1000, 4096, 65536, rnd.randint(1, 65536)))
        req = rnd.randbytes(size)
        s.sendall(req)
        got = bytearray()
        while len(got) < size:
            b = s.recv(size - len(got))
            if not b:
                print("request %d: eof after %d of %d bytes" % (i, len(got), size))
                return 1
            got += b
        if got != req:
            print("request %d: %d bytes differ" % (i, size))
            return 1
        total += size
    s.close()
    print("ok %d %d" % (n, total))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
