"""How the ``eventsnn`` command reports failures: always one ``Error: ...`` line.

A user error (bad option, bad file, refused output) is one line on stderr and
a non-zero exit, never a usage dump or a traceback. An unexpected exception
(a bug, or the machine running out of memory) is one line too, unless the
user asked for the traceback with ``eventsnn --debug ...`` (or set
``EVENTSNN_DEBUG=1``).
"""

from __future__ import annotations

import os

import click

INTERNAL_EXIT = 3  # an eventsnn bug or an exhausted machine, not a user error


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (or its type's name if it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and root.params.get("debug")) or os.environ.get("EVENTSNN_DEBUG") == "1"


def _as_one_line(exc: click.UsageError) -> click.ClickException:
    out = click.ClickException(one_line(exc.format_message()))
    out.exit_code = exc.exit_code
    return out


class OneLineGroup(click.Group):
    """A click group whose every failure is one ``Error:`` line (see the module doc)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `eventsnn`: show the help
                raise
            raise _as_one_line(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if _debug(ctx):
                raise
            raise _as_one_line(exc) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except MemoryError:
            if _debug(ctx):
                raise
            raise _internal("out of memory (lower --max-memory, --timesteps or --samples; "
                            "--debug shows where)") from None
        except RecursionError:
            if _debug(ctx):
                raise
            raise _internal("input nested too deeply (--debug shows where)") from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
            if _debug(ctx):
                raise
            raise _internal(f"internal error ({type(exc).__name__}: {one_line(exc)}); "
                            f"rerun with --debug for the traceback") from None


def _internal(message: str) -> click.ClickException:
    out = click.ClickException(message)
    out.exit_code = INTERNAL_EXIT
    return out
