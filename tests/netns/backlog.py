# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Request-then-close connections into a listener whose accept queue
overflows, so that the kernel drops the handshake's last ACK and a later
segment of the client (its FIN) completes the handshake.

  backlog.py server HOST PORT B BYTES DELAY
      listen with a backlog of B, sleep DELAY seconds, then accept 2B - 1
      connections one after another: read each to EOF and answer
      "<bytes read> <sha256>" before closing.
  backlog.py client HOST PORT B BYTES
      B connections, which fill the accept queue to its brim, then B - 1 at
      once, whose SYNs still get in (no SYN cookies: the request queue has
      room) but whose last ACKs, all but the first, meet a full queue. Each
      one: connect, send BYTES random bytes, shut down the write side, read
      the answer and compare it with what was sent.

Each side prints one line per bad connection and a last line
"done N bad M"; it exits 1 if any connection was bad."""
import hashlib
import os
import socket
import sys
import threading
import time

from one_conn import ending


def read_all(s):
    h, n = hashlib.sha256(), 0
    while True:
        b = s.recv(65536)
        if not b:
            return n, h.hexdigest()
        n += len(b)
        h.update(b)


def server(host, port, backlog, delay, defer):
    conns = 2 * backlog - 1
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    lst = socket.socket(fam, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((host, port))
    if defer:
        lst.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer)
    lst.listen(backlog)
    print("listening", flush=True)
    time.sleep(delay)
    bad = 0
    for i in range(conns):
        c, peer = lst.accept()
        c.settimeout(30)
        try:
            n, digest = read_all(c)
            c.sendall(f"{n} {digest}\n".encode())
            c.close()
        except OSError as e:
            bad += 1
            print(f"server {peer}: {ending(e)}", flush=True)
    print(f"done {conns} bad {bad}", flush=True)
    return bad


def client_one(host, port, nbytes, out, i):
    data = os.urandom(nbytes)
    want = f"{nbytes} {hashlib.sha256(data).hexdigest()}"
    try:
        s = socket.create_connection((host, port), timeout=30)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(256)
            if not b:
                break
            got += b
        s.close()
        got = got.decode(errors="replace").strip()
        out[i] = None if got == want else f"server read {got or 'nothing'}, sent {want}"
    except OSError as e:
        out[i] = ending(e)


def client(host, port, backlog, nbytes):
    conns = 2 * backlog - 1
    out = [None] * conns
    threads = [threading.Thread(target=client_one, args=(host, port, nbytes, out, i))
               for i in range(conns)]
    for i, t in enumerate(threads):
        if i == backlog:
            time.sleep(0.5)  # the first ones are queued: the brim
        t.start()
    for t in threads:
        t.join()
    bad = [o for o in out if o]
    for o in bad:
        print(f"client: {o}", flush=True)
    print(f"done {conns} bad {len(bad)}", flush=True)
    return len(bad)


def main():
    role, host, port, conns, nbytes = sys.argv[1:6]
    if role == "server":
        bad = server(host, int(port), int(conns), float(sys.argv[6]), int(sys.argv[7]))
    else:
        bad = client(host, int(port), int(conns), int(nbytes))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
