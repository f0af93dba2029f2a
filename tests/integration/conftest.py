"""pytest fixtures for the rouse integration tests.

`daemon` (alias `make_daemon`) is a factory: daemon(**kw) builds a
rouse_harness.Daemon in the test's tmp_path (not started). Every daemon a
test made is stopped at teardown, and the test fails if its log holds an
AddressSanitizer / UndefinedBehaviorSanitizer / LeakSanitizer report.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rouse_harness  # noqa: E402


def pytest_report_header(config):
    return "roused: %s (sanitize=%s)" % (rouse_harness.ROUSED,
                                         rouse_harness.SANITIZE)


@pytest.fixture
def make_daemon(tmp_path):
    made = []

    def factory(**kw):
        d = rouse_harness.Daemon(tmp_path, **kw)
        made.append(d)
        return d

    yield factory

    problems = []
    for d in made:
        try:
            if d.running:
                d.stop()
        except AssertionError as e:
            problems.append(str(e))
        finally:
            d.kill()
        rep = d.sanitizer_report()
        if rep:
            problems.append("sanitizer report in %s:\n%s" % (d.log_path, rep))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def daemon(make_daemon):
    return make_daemon


@pytest.fixture
def roused_bin():
    return rouse_harness.ROUSED
