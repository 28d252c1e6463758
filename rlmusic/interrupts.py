"""Ctrl-C, SIGTERM and SIGHUP: one line, the work since the last checkpoint saved, exit 130 (Ctrl-C), 143 (SIGTERM)
or 129 (SIGHUP).

A batch scheduler, `timeout` and `docker stop` send SIGTERM; the CLI treats it as Ctrl-C is treated: both raise a
KeyboardInterrupt (`Terminated` for SIGTERM) in the main thread, which the training loops catch to save a
checkpoint before the CLI prints `error: interrupted` or `error: terminated` and exits. SIGHUP (the terminal
closed, an SSH session dropped; also sent to a stopped job whose shell has gone) is handled as SIGTERM is, unless
it is ignored (`nohup`), so a run started in a terminal keeps its work when the terminal goes.

Two places need more than Python's default handling:

- While TensorFlow's compiled loop steps the environments (and their rewards) on threads of its own, the main
  thread is inside TensorFlow and runs no Python signal handler until the loop ends. So the C-level handler's
  wakeup fd is watched by a thread that sets `INTERRUPTED` at once; a reward mix waiting on a plugin checks it
  and gives up (rewards/mix.py).
- A KeyboardInterrupt raised while TensorFlow turns an error into a Python exception breaks that conversion (a
  pybind11 "error_already_set" traceback). Code that calls a compiled loop runs it under `deferred()`: a signal
  then only records itself, and is raised when the call has returned or failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from rlmusic.errors import UserError

EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_HUNG_UP = 130, 143, 129
INTERRUPTED = threading.Event()  # set as soon as Ctrl-C or SIGTERM arrives, from any thread's point of view
_received: list[int] = []
_deferring = 0
_installed = False


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C's KeyboardInterrupt would be, so that the same saving paths run."""

    signal_name = "SIGTERM"
    exit_code = EXIT_TERMINATED


class HungUp(Terminated):
    signal_name = "SIGHUP"
    exit_code = EXIT_HUNG_UP


class Interrupted(UserError):
    """A wait abandoned because of Ctrl-C or SIGTERM (a reward plugin that never returned)."""

    @property
    def exit_code(self) -> int:
        return exit_code()


def signalled() -> bool:
    """Whether Ctrl-C or SIGTERM has arrived in this process."""
    return bool(_received)


def exit_code() -> int:
    if signal.SIGTERM in _received:
        return EXIT_TERMINATED
    return EXIT_HUNG_UP if signal.SIGHUP in _received else EXIT_INTERRUPTED


def _exception(signum: int) -> KeyboardInterrupt:
    return {signal.SIGTERM: Terminated, signal.SIGHUP: HungUp}.get(signum, KeyboardInterrupt)()


def _handler(signum, frame) -> None:
    _received.append(signum)
    INTERRUPTED.set()
    if not _deferring:
        raise _exception(signum)


def install() -> None:
    """Handle SIGINT and SIGTERM as above (main thread only; once per process)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # nohup asked for the run to outlive the terminal
        signal.signal(signal.SIGHUP, _handler)
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def watch():
        while True:
            got = os.read(r, 64)
            if signal.SIGINT in got or signal.SIGTERM in got or signal.SIGHUP in got:
                INTERRUPTED.set()

    threading.Thread(target=watch, name="rlmusic-interrupts", daemon=True).start()
    _installed = True


@contextlib.contextmanager
def deferred():
    """Run a compiled TensorFlow call whole: a signal arriving meanwhile is raised once the call has returned, or
    in place of the error it ended with (a plugin given up on because of the signal)."""
    global _deferring
    _deferring += 1
    try:
        yield
    except BaseException:
        if _received:
            raise _exception(_received[-1]) from None
        raise
    finally:
        _deferring -= 1
    if _received:
        raise _exception(_received[-1])
