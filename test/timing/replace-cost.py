#!/usr/bin/env python3
# The file system's cost of replacing a small file, without fsync: create a
# temporary file and rename it over the old one (what the store does), and
# write a kept spare file and swap it in with renameat2(RENAME_EXCHANGE)
# (an idea, not built: the swapped-out inode is the next spare, which a
# reader still holding it would see rewritten).
#   python3 test/timing/replace-cost.py /tmp/replace-test   # the directory is created and removed
import ctypes, os, shutil, sys, time

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
data, n = b'x' * 2000, 5000
try:
    for i in range(n):
        with open(os.path.join(d, 'job-%d' % i), 'wb') as f:
            f.write(data)
    spare = os.path.join(d, '.spare')
    open(spare, 'wb').close()
    t = time.time()
    for i in range(n):
        fd = os.open(spare, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, data)
        os.close(fd)
        if libc.renameat2(AT_FDCWD, spare.encode(), AT_FDCWD, os.path.join(d, 'job-%d' % i).encode(), RENAME_EXCHANGE) != 0:
            raise OSError(ctypes.get_errno(), 'renameat2')
    el = time.time() - t
    print('spare and exchange: %.0f replaces/s, %.1f us each' % (n / el, el / n * 1e6))
    t = time.time()
    for i in range(n):
        tmp = os.path.join(d, '.tmp%d' % (i % 50))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.write(fd, data)
        os.close(fd)
        os.rename(tmp, os.path.join(d, 'job-%d' % i))
    el = time.time() - t
    print('create and rename:  %.0f replaces/s, %.1f us each' % (n / el, el / n * 1e6))
finally:
    shutil.rmtree(d)
