#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Many sequential connections, so that slot pairs serve flow after flow.

    reuse.py server ADDR PORT N
    reuse.py client ADDR PORT N

Connection i, in turn (i % 3):

  0  client half-closes first: it sends, shuts its write side and reads
     the reply to EOF; the server reads to EOF, replies and closes
  1  server half-closes first, the same with the roles swapped
  2  client sends, reads the server's one-byte ack of every byte, then
     aborts (SO_LINGER 0): the server must see ECONNRESET, never EOF

Sizes vary per connection (0 bytes to 300 KB). Every byte is checked
against a pattern seeded by the connection and direction, so a byte left
over from an earlier flow on a reused pair shows as a mismatch. Both ends
print the bytes they received in clean connections ("clean RX") and exit
0 only if every connection behaved as TCP says.
"""
import socket
import struct
import sys

from one_conn import fail, halfclose_exchange, listener, pattern

SIZES = [0, 1, 1000, 65536, 300000, 4096, 17]


def recv_n(s, n):
    chunks, got = [], 0
    while got < n:
        b = s.recv(min(1 << 16, n - got))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def expect(i, what, got, want):
    if got != want:
        fail("conn %d %s: got %d bytes, wanted %d (content %s)" %
             (i, what, len(got), len(want),
              "differs" if got and len(got) == len(want) else "short/long"))


def halfclose(s, i, first, mine, theirs):
    got = halfclose_exchange(s, first, mine)
    expect(i, "half-close", got, theirs)
    return len(got)


def server_conn(s, i, c2s, s2c):
    mode = i % 3
    if mode == 0:
        return halfclose(s, i, False, s2c, c2s)
    if mode == 1:
        return halfclose(s, i, True, s2c, c2s)
    expect(i, "before the abort", recv_n(s, len(c2s)), c2s)
    s.sendall(b"k")
    try:
        while True:
            if not s.recv(1 << 16):
                fail("conn %d: clean EOF after an abort" % i)
    except ConnectionResetError:
        pass
    except BlockingIOError:  # tcp_bpf_recvmsg's EAGAIN (docs/steering.md)
        pass
    return 0


def client_conn(s, i, c2s, s2c):
    mode = i % 3
    if mode == 0:
        return halfclose(s, i, True, c2s, s2c)
    if mode == 1:
        return halfclose(s, i, False, c2s, s2c)
    s.sendall(c2s)
    expect(i, "ack", recv_n(s, 1), b"k")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return 0


def main():
    role, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4])
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    rx = 0
    if role == "server":
        ls = listener(addr, port, 8)
    for i in range(n):
        c2s = pattern(SIZES[i % len(SIZES)], "c2s %d" % i)
        s2c = pattern(SIZES[(i + 3) % len(SIZES)], "s2c %d" % i)
        if role == "server":
            s, _ = ls.accept()
            rx += server_conn(s, i, c2s, s2c)
        else:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.connect((addr, port))
            rx += client_conn(s, i, c2s, s2c)
        s.close()
    print("clean RX %d" % rx, flush=True)


if __name__ == "__main__":
    main()
