"""How an ``orders-local`` command ends on an error it can name: one line on stderr, no
traceback, exit status 1 (usage errors are argparse's, status 2)."""

from __future__ import annotations

import argparse
import errno
import sys


def fail(message: str) -> int:
    print(f"orders-local: error: {message}", file=sys.stderr)
    return 1


def listen_failed(args: argparse.Namespace, exc: OSError) -> int:
    if exc.errno == errno.EADDRINUSE:
        return fail(f"port {args.port} on {args.host} is already in use")
    return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
