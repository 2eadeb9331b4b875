"""Sessions: ``nox -s tests`` (the suite), ``nox -s lint`` (ruff), ``nox -s bench`` (every stage,
then the run's pages), ``nox -s fast`` (the fast recipe's target) and ``nox -s screenshot`` (a run's
HTML index as a browser shows it).

Every session that runs the package shares one environment, ``.nox/cnnbench``: torch (a CUDA
build of about 6 GB on Linux x86_64) is installed once per machine, not once per session.
"""

import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

ENV = Path(".nox/cnnbench")
PYTHON = str(ENV / "bin" / "python")


def _environment(session: nox.Session, extras: str = "test") -> None:
    """Create the shared environment if it is missing, and install the package into it with
    ``extras`` (pip finds everything already there and installs nothing the second time)."""
    if not ENV.joinpath("bin", "python").exists():
        session.run(sys.executable, "-m", "venv", str(ENV), external=True)
    session.run(
        PYTHON,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-e",
        f".[{extras}]",
        external=True,
    )


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite on the CPU, one pytest-xdist worker per CPU, each on one thread, as
    is every process it starts (tests/conftest.py), each test file in one worker (its module
    fixtures, a Ray instance among them, made once; ``-- -n 0``: in one process; ``--
    --under-load 2``: with two busy processes beside it), Ray installed so that ``--executor
    ray`` is tested on a local Ray instance, and timm so that ``timm:`` names are counted."""
    _environment(session, "test,ray,timm")
    session.run(
        PYTHON,
        "-m",
        "pytest",
        "-n",
        "logical",
        "--dist",
        "loadfile",
        *session.posargs,
        external=True,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Every stage in order, measuring this machine into runs/<preset>-<device>/ (git-ignored;
    ``-- --out reports/<run>`` to add to a published run), then the run's pages; the preset
    follows the device unless given: ``nox -s bench -- --preset smoke|cpu|book --models P``.
    The peer FLOP counters (thop, ptflops, torchinfo) are installed for its peers stage, Ray
    for ``-- --executor ray``, and timm for ``--models timm:<name>``."""
    _environment(session, "test,peers,ray,timm")
    session.run(PYTHON, "-m", "bench", "all", *session.posargs, external=True)


@nox.session(venv_backend="none")
def fast(session: nox.Session) -> None:
    """The fast recipe's target: three seeds on all 60,000 training and 10,000 test images,
    printing each run, and the median and range over seeds; ``nox -s fast -- --experiment fast
    fast_ablation`` adds the ablation (each technique switched off in turn, three seeds each)."""
    _environment(session)
    session.run(
        PYTHON,
        "-m",
        "bench",
        "train",
        "--preset",
        "book",
        "--experiment",
        "fast",
        *session.posargs,
        external=True,
    )


@nox.session(venv_backend="none")
def screenshot(session: nox.Session) -> None:
    """A run's index.html as a reader sees it: headless Chromium (Debian's
    ``chromium-headless-shell`` or ``chromium`` package) renders it to screenshot.png in the run
    folder (git-ignored): ``nox -s screenshot -- reports/cpu-amd-epyc-avx2``."""
    folder = Path(session.posargs[0] if session.posargs else "reports")
    page = (folder / "index.html").resolve()
    if not page.is_file():
        session.error(f"no {page}: render the run first (python -m bench render {folder})")
    browser = next(
        (b for b in ("chromium-headless-shell", "chromium", "chromium-browser") if shutil.which(b)),
        None,
    )
    if browser is None:
        session.error("no chromium on this machine: apt-get install -y chromium-headless-shell")
    shot = folder / "screenshot.png"
    session.run(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={shot.resolve()}",
        "--window-size=1600,2000",
        page.as_uri(),
        external=True,
        silent=True,
    )
    session.log(f"wrote {shot}")
