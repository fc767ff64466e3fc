"""Helpers for tests that run the real ``qfota`` CLI against the EC200 simulator on a pty
and interrupt it mid-transfer: the command line, the run caught in the middle of its
stream, the process tree it makes (the engine is a child on ``--runtime micropython``),
and the port's exclusive flag."""

import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import sys

from qfota_tools.transport import portlock


def qfota(*args):
    """The command line of ``qfota ARGS`` from this checkout's interpreter."""
    return [sys.executable, "-m", "qfota_tools.cli", *args]


def run(*args, timeout=120, **kw):
    """``qfota ARGS`` run to its end (within ``timeout`` s), its output captured as text."""
    return subprocess.run(qfota(*args), capture_output=True, text=True, timeout=timeout, **kw)


def children(pid):
    """The pids of ``pid``'s children (on micropython, the engine's interpreter)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def alive(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def excl_flag(path):
    """The tty's exclusive flag (TIOCEXCL), 1 or 0."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, portlock.TIOCGEXCL, struct.pack("i", 0)))[0]
    finally:
        os.close(fd)


@contextlib.contextmanager
def stopped(proc):
    """``proc`` and its children held still (SIGSTOP, children first) for the block, as
    Ctrl-Z holds a job, then continued; yields their pids."""
    pids = [proc.pid] + children(proc.pid)
    for pid in reversed(pids):
        os.kill(pid, signal.SIGSTOP)
    try:
        yield pids
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def streaming(sim, cmd, past, within=30, **popen):
    """``cmd`` (a ``qfota update`` on ``sim``'s port) started, yielded once the modem has
    taken more than ``past`` package bytes (asserted within ``within`` s; ``past`` None:
    at once). Its output is stdout and stderr together, as text, unless ``popen`` says
    otherwise. On the way out, a run still going is continued (a test may have stopped
    it), killed and reaped."""
    kw = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kw.update(popen)
    proc = subprocess.Popen(cmd, **kw)
    try:
        if past is not None:
            assert sim.wait_for(lambda m: m.package_bytes > past, within), "never streamed"
        yield proc
    finally:
        if proc.poll() is None:
            for pid in [proc.pid] + children(proc.pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGCONT)
            proc.kill()
            proc.wait(10)
