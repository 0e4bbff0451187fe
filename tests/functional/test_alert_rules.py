"""The alert rules shipped for Prometheus (prometheus/lvs.rules.yml): promtool accepts
them, and its rule tests (tests/prometheus/lvs.rules.test.yml) show each alert firing on
the series that call for it and quiet on healthy ones."""

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"),
                                reason="promtool is missing (Debian's prometheus package: scripts/bootstrap)")


def _promtool(*args):
    assert PROMTOOL, "promtool is missing in CI: scripts/bootstrap installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False, cwd=REPO)


def test_promtool_accepts_the_rules():
    proc = _promtool("check", "rules", "prometheus/lvs.rules.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def test_each_alert_fires_when_it_should_and_only_then():
    proc = _promtool("test", "rules", "tests/prometheus/lvs.rules.test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
