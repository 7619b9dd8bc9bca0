"""Copy-on-write pages paid before a run rather than during it (Linux).

A child forked from the warm worker shares the worker's memory until it writes to it; a run
writes to a few thousand of those pages (the reference counts of every object it touches,
the allocator's own lists), and each first write costs a page fault and a copy: about 4,000
faults, half a warm run's overhead. So now and then a child notes, once its run is over, which
pages it ended up owning (`written_ranges`: present and mapped only by it, in its private
writable mappings), and the worker's next spares have the kernel copy those pages while they
wait for their request (`populate`, madvise MADV_POPULATE_WRITE: as if each page were written,
without writing anything). Pages no longer mapped, or not writable, are refused by the kernel
and skipped: nothing here can touch memory the spare does not own.
"""
import array
import ctypes
import errno
import os

PAGE = os.sysconf("SC_PAGE_SIZE")
MADV_POPULATE_WRITE = 23  # Linux 5.14
# Past this, a run's own big arrays (freed by now) would be copied into every spare.
LIMIT_BYTES = 64 * 1024 ** 2
_PRESENT = 1 << 63
_EXCLUSIVE = 1 << 56


def _writable_private_mappings():
    mappings = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 2 or fields[1][1] != "w" or fields[1][3] != "p":
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            mappings.append((start, end))
    return mappings


def written_ranges():
    """(start, length) of each run of pages this process owns alone: those it copied or
    filled since the fork. At most LIMIT_BYTES in all; [] where /proc cannot tell."""
    ranges = []
    total = 0
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return ranges
    try:
        for start, end in _writable_private_mappings():
            entries = array.array("Q")
            entries.frombytes(os.pread(fd, (end - start) // PAGE * 8, start // PAGE * 8))
            run_start = None
            for index, entry in enumerate(entries):
                owned = entry & _PRESENT and entry & _EXCLUSIVE
                if owned and run_start is None:
                    run_start = index
                elif not owned and run_start is not None:
                    ranges.append((start + run_start * PAGE, (index - run_start) * PAGE))
                    total += (index - run_start) * PAGE
                    run_start = None
            if run_start is not None:
                ranges.append((start + run_start * PAGE, (len(entries) - run_start) * PAGE))
                total += (len(entries) - run_start) * PAGE
            if total >= LIMIT_BYTES:
                break
    except OSError:
        return []
    finally:
        os.close(fd)
    return ranges


def populate(ranges):
    """Has the kernel copy (or fill) the pages of `ranges` in this process now. The number of
    ranges it accepted."""
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    accepted = 0
    for start, length in ranges:
        if madvise(start, length, MADV_POPULATE_WRITE) == 0:
            accepted += 1
        elif ctypes.get_errno() == errno.EINVAL and accepted == 0:
            return 0  # a kernel older than 5.14: no use trying the others
    return accepted


def save_ranges(path, ranges):
    """Writes `ranges` to `path` whole (as 64-bit pairs), for another process to take."""
    flat = array.array("Q")
    for start, length in ranges:
        flat.extend((start, length))
    partial = path + ".partial"
    with open(partial, "wb") as f:
        flat.tofile(f)
    os.rename(partial, path)


def take_ranges(path):
    """The ranges saved at `path`, which is removed; None if there are none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
    except OSError:
        return None
    flat = array.array("Q")
    flat.frombytes(data[:len(data) // 16 * 16])
    return list(zip(flat[0::2], flat[1::2]))
