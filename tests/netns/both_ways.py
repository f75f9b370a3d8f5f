# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Random bytes both ways over connections to one long-lived listener, for
tests/netns/test_listen_adopt.sh (the listener must outlive an agent start,
which tests/tools/blast's does not).

  both_ways.py server HOST PORT CONNS BYTES   listen, say "listening", then
      for each of CONNS connections in turn: read to EOF, send BYTES, close;
      print "conn I received N SHA sent N SHA"
  both_ways.py client HOST PORT BYTES [HOLD]   send BYTES, wait HOLD
      seconds (default 0: the connection stays open for a look at it), shut
      down the write side, read to EOF; print "sent N SHA received N SHA"
"""
import hashlib
import os
import socket
import sys
import time

from one_conn import listener

CHUNK = 1 << 16


def send_random(s, n):
    h, left = hashlib.sha256(), n
    while left:
        b = os.urandom(min(CHUNK, left))
        s.sendall(b)
        h.update(b)
        left -= len(b)
    return "%d %s" % (n, h.hexdigest())


def recv_to_eof(s):
    h, n = hashlib.sha256(), 0
    while True:
        b = s.recv(CHUNK)
        if not b:
            return "%d %s" % (n, h.hexdigest())
        h.update(b)
        n += len(b)


def server(host, port, conns, nbytes):
    lst = listener(host, port, 8)
    for i in range(conns):
        c, _ = lst.accept()
        got = recv_to_eof(c)
        sent = send_random(c, nbytes)
        c.close()
        print("conn %d received %s sent %s" % (i, got, sent), flush=True)


def client(host, port, nbytes, hold):
    s = socket.create_connection((host, port))
    sent = send_random(s, nbytes)
    time.sleep(hold)
    s.shutdown(socket.SHUT_WR)
    print("sent %s received %s" % (sent, recv_to_eof(s)), flush=True)


if sys.argv[1] == "server":
    server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
else:
    client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
           float(sys.argv[5]) if len(sys.argv) > 5 else 0)
