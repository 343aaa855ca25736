"""What every refusal must look like to a user: its exit code, one `Error:` line, no traceback."""
from __future__ import annotations


def assert_refused(res, code: int, *words):
    """``res`` (a click CliRunner result) exited with ``code`` and printed exactly one ``Error:``
    line, without a traceback, holding each of ``words`` (case-insensitive)."""
    out = res.output
    assert res.exit_code == code, f"exit {res.exit_code}, expected {code}:\n{out}\n{res.exception!r}"
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out
    assert "Traceback" not in out
    for w in words:
        assert w.lower() in errors[0].lower(), errors[0]
