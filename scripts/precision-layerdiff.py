#!/usr/bin/env python3
"""precision-layerdiff.py LOWER UPPER OUT: the image layer that turns root
filesystem LOWER into UPPER, as a build step's layer holds it: every entry
of UPPER that LOWER lacks or holds otherwise (content, symlink target or
type), and a whiteout (.wh.NAME) for each entry of LOWER that UPPER lacks.
Regular files are hard-linked into OUT (the same filesystem as UPPER), so
OUT costs no data. make precision's Docker host image uses it to lay out
a Debian server as two layers: debootstrap's minbase, then what installing
the server's packages added and changed.
"""
import filecmp
import os
import stat
import sys


def same(a, b, sa, sb):
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(sa.st_mode):
        return sa.st_size == sb.st_size and filecmp.cmp(a, b, shallow=False)
    return stat.S_ISDIR(sa.st_mode)


def ensure_dir(out, rel, upper):
    d = os.path.join(out, rel)
    if not os.path.isdir(d):
        ensure_dir(out, os.path.dirname(rel), upper) if rel else None
        os.makedirs(d, exist_ok=True)
        st = os.lstat(os.path.join(upper, rel))
        os.chmod(d, stat.S_IMODE(st.st_mode))


def main(lower, upper, out):
    os.makedirs(out)
    for dirpath, dirnames, filenames in os.walk(upper):
        rel = os.path.relpath(dirpath, upper)
        rel = "" if rel == "." else rel
        ldir = os.path.join(lower, rel)
        names = dirnames + filenames
        for name in names:
            u, l = os.path.join(dirpath, name), os.path.join(ldir, name)
            su = os.lstat(u)
            try:
                sl = os.lstat(l)
            except FileNotFoundError:
                sl = None
            if sl is not None and same(l, u, sl, su):
                continue
            if stat.S_ISDIR(su.st_mode):
                ensure_dir(out, os.path.join(rel, name), upper)
                continue
            ensure_dir(out, rel, upper)
            dst = os.path.join(out, rel, name)
            if stat.S_ISLNK(su.st_mode):
                os.symlink(os.readlink(u), dst)
            elif stat.S_ISREG(su.st_mode):
                os.link(u, dst)
        if os.path.isdir(ldir) and not os.path.islink(ldir):
            for name in os.listdir(ldir):
                if not os.path.lexists(os.path.join(dirpath, name)):
                    ensure_dir(out, rel, upper)
                    open(os.path.join(out, rel, ".wh." + name), "w").close()
        # A directory that replaced a non-directory below is walked whole.
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
