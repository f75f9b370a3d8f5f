#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Apps for a flow whose agent dies while its peer agent cannot help.

fin-writer HOST PORT N GO: accept one connection; once the file GO exists,
send N bytes and close (our FIN follows the bytes).
reader HOST PORT: connect, read until EOF or an error; print how much and
how it ended ("eof" or the errno name). EAGAIN is read past (a blocking
reader gets one before a reset, see docs/steering.md).
"""
import os
import socket
import sys
import time

from one_conn import accept_one, ending

CHUNK = 1 << 16




def fin_writer(host, port, n, go):
    c = accept_one(host, port)
    while not os.path.exists(go):
        time.sleep(0.01)
    c.sendall(b"f" * n)
    c.close()


def reader(host, port):
    c = socket.create_connection((host, port))
    got, err, eagain = 0, None, 0
    while True:
        try:
            b = c.recv(CHUNK)
        except BlockingIOError:  # once before a reset: docs/steering.md
            eagain += 1
            continue
        except OSError as e:
            err = e
            break
        if not b:
            break
        got += len(b)
    print("read %d, then %s (%d EAGAIN)" % (got, ending(err), eagain), flush=True)


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "fin-writer":
        fin_writer(host, port, int(sys.argv[4]), sys.argv[5])
    else:
        reader(host, port)
