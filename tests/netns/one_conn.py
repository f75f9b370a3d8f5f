# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What the netns test programs share: one accepted connection, and how a
stream ended, in words."""
import errno
import socket


def accept_one(host, port):
    """Listen on HOST PORT, say "listening" (the tests wait for it), and
    return the first connection."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    lst = socket.socket(fam, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((host, port))
    lst.listen(1)
    print("listening", flush=True)
    c, _ = lst.accept()
    return c


def ending(e):
    """"eof" for None, else the OSError's errno name."""
    return "eof" if e is None else errno.errorcode.get(e.errno, str(e.errno))
