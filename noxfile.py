"""Sessions: ``nox -s tests`` (the suite) and ``nox -s lint`` (ruff)."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True  # torch is large: install it once per machine


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on the CPU."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
