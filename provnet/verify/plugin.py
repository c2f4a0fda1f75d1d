"""pytest plugin of `provnet verify`: turns each site test into a structured finding.

Tests declare their layer with ``@pytest.mark.layer(name, order)`` and fail through
:func:`expect`, which carries the expected and the observed value; :func:`degrade` reports
a check that is not healthy *yet* (it passes, its finding is marked degraded). Each finding
is appended as one JSON line to ``$PROVNET_FINDINGS`` (safe across xdist workers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any, NoReturn

import pytest

from provnet.verify.findings import Finding, ssh_failure


class Mismatch(AssertionError):
    """A check failed: what the model expects and what the device shows."""

    def __init__(self, what: str, expected: Any, observed: Any) -> None:
        self.what, self.expected, self.observed = what, str(expected), str(observed)
        super().__init__(f"{what}: expected {self.expected}, observed {self.observed}")


def expect(condition: bool, what: str, expected: Any, observed: Any) -> None:
    """Fail the check with an actionable one-line message unless ``condition`` holds."""
    if not condition:
        raise Mismatch(what, expected, observed)


class Degraded(Exception):
    """A check is not healthy yet but expected to become so by itself: reported, never failed."""

    def __init__(self, what: str, expected: Any, observed: Any, message: str) -> None:
        self.what, self.expected, self.observed, self.message = what, str(expected), str(observed), message
        super().__init__(message)


def degrade(what: str, expected: Any, observed: Any, message: str) -> NoReturn:
    """End the check as passed but degraded, with ``message`` as the report's one line."""
    raise Degraded(what, expected, observed, message)


DEGRADED = pytest.StashKey[Degraded]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # caught here, not in makereport: pytest (and its JUnit XML) must see a pass, not a failure
    try:
        return (yield)
    except Degraded as exc:
        item.stash[DEGRADED] = exc
        item.user_properties.append(("provnet_degraded", exc.message))
        return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "layer(name, order): the site layer a check belongs to")
    config.addinivalue_line("markers", "roles(*roles): the device roles a check runs on")
    config.addinivalue_line("markers", "levels(*levels): the device levels a check runs on (province, commune, …)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    marker = item.get_closest_marker("layer")
    callspec = getattr(item, "callspec", None)
    hostname = callspec.params.get("hostname") if callspec else None
    if marker is None or hostname is None:
        return
    site = item.config.stash.get(SITE_OF, {}).get(hostname, "dc")
    finding = Finding(site=site, host=hostname, layer=marker.args[0],
                      order=marker.args[1] if len(marker.args) > 1 else 0,
                      check=item.originalname.removeprefix("test_").replace("_", " "),
                      ok=report.passed, skipped=report.skipped)
    degraded = item.stash.get(DEGRADED, None) if report.when == "call" else None
    if degraded is not None:
        finding.degraded = True
        finding.expected, finding.observed, finding.message = degraded.expected, degraded.observed, degraded.message
    if call.excinfo is not None:
        exc = call.excinfo.value
        if isinstance(exc, Mismatch):
            finding.expected, finding.observed, finding.message = exc.expected, exc.observed, str(exc)
        elif (ssh := ssh_failure(exc)) is not None:
            finding.expected, finding.observed, finding.message = ssh
        elif not report.skipped:
            finding.message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:400]
    path = os.environ.get("PROVNET_FINDINGS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(finding.as_dict(), ensure_ascii=False, default=str) + "\n")


SITE_OF = pytest.StashKey[dict]()
