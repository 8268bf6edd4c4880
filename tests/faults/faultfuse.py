#!/usr/bin/env python3
"""faultfuse.py: a FUSE passthrough filesystem that forgets what was never
fsynced, so a test can cut the power under a broker and see what survives.

    faultfuse.py BACKING_DIR MOUNTPOINT CTL_FILE

Runs in the foreground until unmounted (`fusermount3 -u MOUNTPOINT`). Needs
Debian's `fuse3` and `python3-fusepy` (run it with /usr/bin/python3). Every
operation crosses into Python: keep the data small.

Started from a prototype fault-injection tool; this copy models directory
entries as well as file contents, keeps the kernel's page cache (so writable
shared mmaps, which the broker's indexes use, work) and powers off after a
crash instead of going on with stale caches.

# Control file

CTL_FILE holds whitespace-separated tokens. It is re-read whenever its
modification time changes (write it whole: a temporary file and a rename):

* `fsync=ok|noop|eio`: fsync and fsyncdir work, lie (return success and make
  nothing durable), or fail with EIO.
* `write=ok|enospc|eio|torn`: writes work, fail with ENOSPC or EIO, or write
  only the first half of the buffer and report the short count.
* `lose-unsynced`: track durability (below) so that a crash loses whatever
  was not made durable. What the files hold when tracking starts counts as
  durable.
* `tear-unsynced`: with `lose-unsynced`, a file whose only undurable change
  is an append keeps the first half of the appended bytes through a crash
  (some of the page cache reached the disk): a torn tail.
* `crash`: a power loss, now. Every file and directory is put back to its
  durable state, then the token is removed from CTL_FILE (wait for that) and
  from then on every operation fails with EIO, as a machine without power
  would: unmount, and mount a new instance over BACKING_DIR to "reboot". If
  the rollback itself fails, the token becomes `crash-failed` and the reason
  is on stderr.

Write `crash` after SIGKILLing the process under test, then touch the mount
(a `stat` of MOUNTPOINT) so this process reads the control file.

# What is durable (POSIX's strictest reading)

* A file's contents are durable as of its last fsync or fdatasync.
* A directory's entries are durable as of its last fsync: creating,
  removing or renaming a name (a file's or a directory's) is durable only
  once the directory holding the name is fsynced. Journaling file systems
  often persist names earlier; a program must not count on it.
* A new file's durable contents are empty, a new directory's durable
  entries none. A file removed or replaced by a rename whose name is still
  durable keeps its durable contents for the crash.

After a crash the tree is rebuilt from the root's durable entries down, each
file with its durable contents. Files are tracked by inode; hard links and
symbolic links are not supported. Times and permissions are not rolled back.
"""
import errno
import os
import resource
import shutil
import stat
import sys
import traceback

try:
    from fuse import FUSE, FuseOSError, Operations  # pip fusepy
except ImportError:
    from fusepy import FUSE, FuseOSError, Operations  # Debian python3-fusepy


def read_fd(fd):
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 20), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def read_path(path):
    with open(path, "rb") as f:
        return f.read()


class FaultFS(Operations):
    def __init__(self, root, ctl):
        self.root = os.path.realpath(root)
        self.ctl = os.path.realpath(ctl)
        self.ctl_mtime = None
        self.tokens = set()
        # Durable state, captured when a thing first changes after tracking
        # starts (until then it is what the backing directory holds).
        self.files = {}  # inode -> durable contents (bytes)
        self.dirs = {}  # inode -> {name: (inode, is_dir)} durable entries
        # Removed inodes still named by a durable entry, held open so their
        # numbers are not reused while the model refers to them.
        self.pinned = {}  # inode -> fd
        self.powered_off = False

    # --- control file and the model

    def _enter(self):
        """Start of every operation: read the control file if it changed,
        run a requested crash, refuse everything once powered off."""
        if not self.powered_off:
            try:
                mtime = os.stat(self.ctl).st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime != self.ctl_mtime:
                self.ctl_mtime = mtime
                try:
                    self.tokens = set(read_path(self.ctl).decode().split()) if mtime else set()
                except FileNotFoundError:
                    self.tokens = set()
                if "crash" in self.tokens:
                    self._crash()
        if self.powered_off:
            raise FuseOSError(errno.EIO)

    def _tracking(self):
        return "lose-unsynced" in self.tokens

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    @staticmethod
    def _listing(full):
        out = {}
        for name in os.listdir(full):
            st = os.lstat(os.path.join(full, name))
            out[name] = (st.st_ino, stat.S_ISDIR(st.st_mode))
        return out

    def _track_dir(self, full):
        """Captures a directory's durable entries before its first change."""
        if self._tracking():
            ino = os.lstat(full).st_ino
            if ino not in self.dirs:
                self.dirs[ino] = self._listing(full)

    def _track_file(self, ino, read):
        """Captures a file's durable contents before its first change."""
        if self._tracking() and ino not in self.files:
            self.files[ino] = read()

    def _referenced(self, ino):
        return any(e[0] == ino for listing in self.dirs.values() for e in listing.values())

    def _retire(self, full):
        """`full` is about to lose its name (unlink, rmdir, replaced by a
        rename). Keeps what a crash may bring back."""
        if not self._tracking():
            return
        st = os.lstat(full)
        if stat.S_ISDIR(st.st_mode):
            self._track_dir(full)
        else:
            self._track_file(st.st_ino, lambda: read_path(full))
        if self._referenced(st.st_ino):
            if st.st_ino not in self.pinned:
                self.pinned[st.st_ino] = os.open(full, os.O_RDONLY)
        else:
            self.files.pop(st.st_ino, None)
            self.dirs.pop(st.st_ino, None)

    def _unpin_unreferenced(self):
        for ino in [i for i in self.pinned if not self._referenced(i)]:
            os.close(self.pinned.pop(ino))
            self.files.pop(ino, None)
            self.dirs.pop(ino, None)

    def _crash(self):
        try:
            self._roll_back()
            result = "crash"
        except Exception:
            traceback.print_exc()
            result = "crash-failed"
        self.powered_off = True
        for fd in self.pinned.values():
            os.close(fd)
        self.pinned.clear()
        tokens = sorted(t for t in self.tokens if t != "crash")
        if result != "crash":
            tokens.append(result)
        tmp = self.ctl + ".faultfuse.tmp"
        with open(tmp, "w") as f:
            f.write(" ".join(tokens) + "\n")
        os.rename(tmp, self.ctl)

    def _roll_back(self):
        """Rebuilds the backing tree as the durable state describes it."""
        if not self._tracking():
            return
        current = {}  # inode -> path, for everything still named
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                current[os.lstat(full).st_ino] = full
        tear = "tear-unsynced" in self.tokens

        def contents(ino):
            now = None
            if ino in current:
                now = read_path(current[ino])
            elif ino in self.pinned:
                now = read_fd(self.pinned[ino])
            durable = self.files.get(ino)
            if durable is None:
                if now is None:
                    raise RuntimeError(f"inode {ino} is neither tracked nor present")
                return now
            if tear and now is not None and len(now) > len(durable) and now.startswith(durable):
                return now[: len(durable) + (len(now) - len(durable)) // 2]
            return durable

        def build(dir_ino, dest):
            listing = self.dirs.get(dir_ino)
            if listing is None:
                listing = self._listing(current[dir_ino] if dir_ino in current else self.root)
            for name, (ino, is_dir) in sorted(listing.items()):
                target = os.path.join(dest, name)
                if is_dir:
                    os.mkdir(target)
                    build(ino, target)
                else:
                    with open(target, "wb") as f:
                        f.write(contents(ino))

        staging = self.root.rstrip("/") + ".faultfuse-rebuild"
        if os.path.exists(staging):
            shutil.rmtree(staging)
        os.mkdir(staging)
        build(os.lstat(self.root).st_ino, staging)
        for name in os.listdir(self.root):
            full = os.path.join(self.root, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
        for name in os.listdir(staging):
            os.rename(os.path.join(staging, name), os.path.join(self.root, name))
        os.rmdir(staging)
        os.sync()

    # --- metadata

    def getattr(self, path, fh=None):
        self._enter()
        st = os.lstat(self._p(path))
        return {k: getattr(st, k) for k in (
            "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink",
            "st_size", "st_uid", "st_blocks")}

    def readdir(self, path, fh):
        self._enter()
        return [".", ".."] + os.listdir(self._p(path))

    def statfs(self, path):
        self._enter()
        s = os.statvfs(self._p(path))
        return {k: getattr(s, k) for k in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
            "f_files", "f_flag", "f_frsize", "f_namemax")}

    def chmod(self, path, mode):
        self._enter()
        return os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        self._enter()
        return os.chown(self._p(path), uid, gid)

    def utimens(self, path, times=None):
        self._enter()
        return os.utime(self._p(path), times)

    # --- names

    def mkdir(self, path, mode):
        self._enter()
        full = self._p(path)
        self._track_dir(os.path.dirname(full))
        os.mkdir(full, mode)
        if self._tracking():
            self.dirs[os.lstat(full).st_ino] = {}

    def rmdir(self, path):
        self._enter()
        full = self._p(path)
        self._track_dir(os.path.dirname(full))
        self._retire(full)
        os.rmdir(full)

    def unlink(self, path):
        self._enter()
        full = self._p(path)
        self._track_dir(os.path.dirname(full))
        self._retire(full)
        os.unlink(full)

    def rename(self, old, new):
        self._enter()
        old_full, new_full = self._p(old), self._p(new)
        self._track_dir(os.path.dirname(old_full))
        self._track_dir(os.path.dirname(new_full))
        if os.path.lexists(new_full):
            self._retire(new_full)
        os.rename(old_full, new_full)

    def create(self, path, mode, fi=None):
        self._enter()
        full = self._p(path)
        self._track_dir(os.path.dirname(full))
        existed = os.path.lexists(full)
        fd = os.open(full, os.O_RDWR | os.O_CREAT, mode)
        if not existed and self._tracking():
            self.files[os.fstat(fd).st_ino] = b""
        return fd

    # --- data

    def open(self, path, flags):
        self._enter()
        fd = os.open(self._p(path), os.O_RDWR)
        if flags & os.O_TRUNC:
            self._track_file(os.fstat(fd).st_ino, lambda: read_fd(fd))
            os.ftruncate(fd, 0)
        return fd

    def read(self, path, size, offset, fh):
        self._enter()
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self._enter()
        if "write=enospc" in self.tokens:
            raise FuseOSError(errno.ENOSPC)
        if "write=eio" in self.tokens:
            raise FuseOSError(errno.EIO)
        if "write=torn" in self.tokens and len(data) > 1:
            data = data[: len(data) // 2]
        self._track_file(os.fstat(fh).st_ino, lambda: read_fd(fh))
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._enter()
        if fh is not None:
            self._track_file(os.fstat(fh).st_ino, lambda: read_fd(fh))
            os.ftruncate(fh, length)
        else:
            full = self._p(path)
            self._track_file(os.lstat(full).st_ino, lambda: read_path(full))
            os.truncate(full, length)

    def flush(self, path, fh):
        self._enter()
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0

    def _fsync_fault(self):
        """True when fsync must lie."""
        if "fsync=eio" in self.tokens:
            raise FuseOSError(errno.EIO)
        return "fsync=noop" in self.tokens

    def fsync(self, path, datasync, fh):
        self._enter()
        if self._fsync_fault():
            return 0
        os.fsync(fh)
        if self._tracking():
            self.files[os.fstat(fh).st_ino] = read_fd(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        self._enter()
        if self._fsync_fault():
            return 0
        full = self._p(path)
        fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if self._tracking():
            self.dirs[os.lstat(full).st_ino] = self._listing(full)
            self._unpin_unreferenced()
        return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # No direct_io: the page cache stays, so shared writable mmaps work; a
    # crash powers this instance off, and the next mount starts with cold
    # caches. attr/entry timeouts of 0 keep sizes and names exact.
    FUSE(FaultFS(sys.argv[1], sys.argv[3]), sys.argv[2], foreground=True, nothreads=True,
         attr_timeout=0, entry_timeout=0, negative_timeout=0, big_writes=True,
         max_write=131072, fsname="faultfuse")
