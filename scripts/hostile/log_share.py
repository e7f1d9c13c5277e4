"""Whose lines a stretch of the server's log holds: the good client's, or
the rest (the attack's).

A call's first line names it with its span, `call{id=N ... user=Peter S}`,
and its later lines with `call#N`. Calls whose first line carries a user
are the good client's (an attacker's request never arrives, so its calls
never learn a user); every other line counts as the attack's.

Prints one JSON object: total_bytes, good_bytes, other_bytes, other_lines,
and a few of the other lines as samples.

Usage: log_share.py LOG OFFSET
"""

import json
import re
import sys

FIRST = re.compile(rb"call\{id=(\d+) [^}]*user=")
LATER = re.compile(rb"call#(\d+):")


def main():
    path, offset = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().splitlines(keepends=True)
    good = set()
    for line in lines:
        match = FIRST.search(line)
        if match:
            good.add(match.group(1))
    total = good_bytes = 0
    others = []
    for line in lines:
        total += len(line)
        match = FIRST.search(line) or LATER.search(line)
        if match and match.group(1) in good:
            good_bytes += len(line)
        else:
            others.append(line)
    json.dump({
        "total_bytes": total,
        "good_bytes": good_bytes,
        "other_bytes": total - good_bytes,
        "other_lines": len(others),
        "samples": [line.decode(errors="replace").rstrip() for line in others[:5]],
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
