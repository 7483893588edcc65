"""Running the real CLI in tests, and the one-line error every bad input must give."""

from __future__ import annotations

from click.testing import CliRunner

from eventsnn.cli.main import main


def invoke(args):
    """Run ``eventsnn ARGS`` in-process with stderr kept apart; exceptions propagate."""
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always keeps stderr apart
        runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error(result, *needles):
    """The result is a handled failure: non-zero exit (not 3, an internal error), no traceback,
    exactly one ``Error: ...`` line on stderr containing every needle. Returns that line."""
    assert result.exit_code not in (0, 3)  # 3: an internal error, not a handled one
    assert "Traceback" not in result.stderr + result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
