"""Sessions: ``nox -s tests`` (the suite), ``nox -s lint`` (ruff), ``nox -s bench`` (every stage,
then the reports), ``nox -s fast`` (the fast recipe's target) and ``nox -s microbench``."""

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


@nox.session
def microbench(session: nox.Session) -> None:
    """Time chapter 7's primitives and small forward passes (pytest-benchmark); results are
    saved under .benchmarks/ (compare runs with --benchmark-compare) and in the results store."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "benchmarks", "--benchmark-only", "--benchmark-autosave",
        "--benchmark-max-time=0.5", "--benchmark-columns=median,iqr,rounds", *session.posargs,
    )  # fmt: skip


@nox.session
def bench(session: nox.Session) -> None:
    """Every stage in order, then reports/index.md; the profile follows the device unless given:
    ``nox -s bench -- --profile smoke|cpu|book --models PATTERN``."""
    session.install("-e", ".")
    session.run("python", "-m", "bench", "all", *session.posargs)


@nox.session
def fast(session: nox.Session) -> None:
    """The fast recipe's target: three seeds on all 60,000 training and 10,000 test images,
    printing each run and the medians; ``nox -s fast -- --experiment fast fast_ablation`` adds
    the ablation (one run per technique switched off)."""
    session.install("-e", ".")
    session.run("python", "-m", "bench", "train", "--profile", "book", "--experiment", "fast",
                *session.posargs)  # fmt: skip
