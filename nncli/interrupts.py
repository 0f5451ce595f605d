"""Ctrl-C and SIGTERM (which cli.main turns into the same KeyboardInterrupt) inside nncli.

Python raises KeyboardInterrupt between any two bytecodes of the main thread, library code
included. Most code is fine with that; a library's cleanup is not always: zipfile, struck in
the middle of closing an archive member, raises its own error over the interrupt, and its
half-closed archive later prints "Exception ignored" from the garbage collector. So writers
of archives defer the interrupt until the archive is complete (`deferred_interrupts`), and
the places that report interrupts recognise one that surfaced as another error
(`interrupted_during`).
"""
import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupted_during(e):
    """Whether `e` was raised while a KeyboardInterrupt was being handled: such an error is
    the interrupt (zipfile's "Can't close the ZIP file while there is an open writing
    handle" when Ctrl-C lands inside np.savez)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__context__
    return False


@contextlib.contextmanager
def deferred_interrupts():
    """Run the block with SIGINT and SIGTERM held back; one that arrived meanwhile is
    acted on (its handler called: KeyboardInterrupt) as the block ends. A second one
    during the block acts at once, so a write that hangs can still be stopped. Signals
    reach only the main thread: elsewhere, and for signals nncli does not handle (ignored,
    or the default action), nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    handlers = {s: h for s, h in handlers.items() if callable(h)}
    pending = []

    def hold(signum, frame):
        if pending:
            handlers[signum](signum, frame)
        pending.append(signum)

    for s in handlers:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    if pending:
        handlers[pending[0]](pending[0], None)
