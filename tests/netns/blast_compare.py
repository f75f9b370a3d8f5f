# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Compare what tests/tools/blast printed at both ends.

    blast_compare.py CLIENT_OUT SERVER_OUT BYTES CONNS

Exit 0 if each of the CONNS connections sent and received BYTES each way,
with no error, and the SHA-256 each end sent is the one the other end
received; otherwise one line per connection that differs, and exit 1.
"""
import sys


def load(path):
    rows = {}
    for line in open(path):
        f = line.split()
        if f and f[0] == "conn":
            rows[int(f[1])] = (int(f[3]), f[4], int(f[6]), f[7], " ".join(f[8:]))
    return rows


c, s = load(sys.argv[1]), load(sys.argv[2])
nbytes, conns = int(sys.argv[3]), int(sys.argv[4])
ok = len(c) == conns and len(s) == conns
for i in range(conns):
    if i not in c or i not in s:
        ok = False
        continue
    cs, csha, cr, crsha, cerr = c[i]
    ss, ssha, sr, srsha, serr = s[i]
    if cerr or serr or cs != nbytes or sr != nbytes or ss != nbytes or cr != nbytes \
       or csha != srsha or ssha != crsha:
        print("# conn %d mismatch: client %s / server %s" % (i, c[i], s[i]))
        ok = False
sys.exit(0 if ok else 1)
