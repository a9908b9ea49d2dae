"""moto's S3 server, with its conditional writes made atomic, as S3's are.

moto checks If-Match / If-None-Match and then writes, with no lock, on a threaded server: two
writers holding the same version can both succeed (a lost update), which S3 never allows. The
compare-and-swap test caught it as a rare, timing-dependent failure (15 of 16 increments kept).
This runs moto's own `main` with one lock around each conditional write, so that the moto phase
tests our client against an S3 that keeps S3's guarantee; everything else runs as moto runs it.
"""

import sys
import threading

import moto.server as server

_lock = threading.Lock()
_run_simple = server.run_simple


def _conditional_writes_one_at_a_time(app):
    def wrapped(environ, start_response):
        conditional = environ.get("REQUEST_METHOD") in ("PUT", "POST") and (
            "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
        )
        if not conditional:
            return app(environ, start_response)
        with _lock:
            # The whole answer is made inside the lock: moto has written by then.
            return list(app(environ, start_response))

    return wrapped


def run_simple(host, port, app, **kwargs):
    _run_simple(host, port, _conditional_writes_one_at_a_time(app), **kwargs)


server.run_simple = run_simple
server.main(sys.argv[1:])
