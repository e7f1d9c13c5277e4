"""Story files for the library cases.

  big DIR BYTES   big0.txt .. big4.txt, BYTES bytes each, a text of their
                  own each (a title line, then numbered lines)
  many DIR COUNT  story-0000.txt ..: COUNT small stories

Usage: make_stories.py big|many DIR N
"""

import os
import sys


def big(directory, size):
    for k in range(5):
        title = f"Big story number {k}\n".encode()
        block = "".join(f"Big story {k}, line {i:05d}: all work and no play.\n" for i in range(20000)).encode()
        with open(os.path.join(directory, f"big{k}.txt"), "wb") as f:
            f.write(title)
            written = len(title)
            while written < size:
                part = block[: size - written]
                f.write(part)
                written += len(part)


def many(directory, count):
    for i in range(count):
        with open(os.path.join(directory, f"story-{i:04d}.txt"), "w") as f:
            f.write(f"Story number {i}\nOnce upon a time.\n")


if __name__ == "__main__":
    {"big": big, "many": many}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
