"""The pip way: ``pip install .`` in a clean virtualenv makes the pack visible to Salt
through its ``salt.loader`` entry point, without any file_roots or sync."""

import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module", name="source")
def fixture_source(tmp_path_factory):
    """A copy of the sources, without a checkout's leftovers (a stale build/ folder goes
    into a wheel whole) or its virtualenvs."""
    source = tmp_path_factory.mktemp("source") / "pack"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv*", ".git", "build", "*.egg-info",
                                                                  "__pycache__", ".scratch", ".pytest_cache"))
    return source


@pytest.fixture(scope="module", name="clean_venv")
def fixture_clean_venv(tmp_path_factory, source):
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # A wheel built from that copy: no editable install, no repo on sys.path. (No .pyc
    # written at install: Salt's thousands of modules took most of a minute; Python
    # compiles what it imports anyway.)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        env={**os.environ, "SETUPTOOLS_USE_DISTUTILS": "stdlib"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return venv


def _salt_call(venv, tmp_path, *args):
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "minion").write_text(f"id: pkgtest\nroot_dir: {tmp_path}\nfile_client: local\n")
    proc = subprocess.run(
        [str(venv / "bin" / "salt-call"), "-c", str(conf), "--local", "--out=json", *args],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),  # not the repo: nothing may come from the checkout
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["local"]


def test_installed_pack_is_seen_by_salt_loader(clean_venv, tmp_path):
    site_packages = subprocess.run(
        [str(clean_venv / "bin" / "python"), "-c", "import lvs_salt, lvstun.site; print(lvs_salt.__file__)"],
        capture_output=True, text=True, check=True, cwd=str(tmp_path),
    ).stdout
    assert str(clean_venv) in site_packages and REPO not in site_packages
    assert "lvs_site" in _salt_call(clean_venv, tmp_path, "sys.list_modules")
    assert "lvs_site" in _salt_call(clean_venv, tmp_path, "sys.list_state_modules")


def test_installed_module_runs_with_shared_code(clean_venv, tmp_path):
    # lvs_site.validate imports lvstun.site (the shared _utils code) and runs it.
    errors = _salt_call(clean_venv, tmp_path, "lvs_site.validate", "pillar={}")
    assert errors == ["lvs: no site defined (the pillar has no 'lvs' tree)"]


def test_a_minion_installs_no_lab_code_and_the_lab_comes_as_its_own_distribution(clean_venv, source, tmp_path):
    """``pip install .`` (what a minion runs) brings no lvs_lab and no lvs-lab command;
    ``pip install ./lab`` (the bootstrap's) brings both."""
    python, script = str(clean_venv / "bin" / "python"), clean_venv / "bin" / "lvs-lab"
    found = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('lvs_lab'))"],
                           capture_output=True, text=True, check=True, cwd=str(tmp_path)).stdout.strip()
    assert found == "None" and not script.exists()
    listed = subprocess.run([str(clean_venv / "bin" / "pip"), "show", "-f", "salt-lvs-tun"], capture_output=True,
                            text=True, check=True).stdout
    assert "lvs_lab" not in listed and "uml_xstate" not in listed
    proc = subprocess.run([str(clean_venv / "bin" / "pip"), "install", "-q", "--no-compile",
                           "--disable-pip-version-check", str(source / "lab")], capture_output=True, text=True,
                          check=False, env={**os.environ, "SETUPTOOLS_USE_DISTUTILS": "stdlib"})
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False, cwd=str(tmp_path))
    assert proc.returncode == 0 and "exec" in proc.stdout and "down" in proc.stdout


def test_installed_pack_brings_the_ios_proxy_and_metaproxy(clean_venv, tmp_path):
    # A proxy's (meta)proxy module is loaded before any sync: it must come installed.
    proc = subprocess.run(
        [str(clean_venv / "bin" / "python"), "-c",
         "import json, lvs_salt.loader as l; print(json.dumps(l.get_dirs()))"],
        capture_output=True, text=True, check=True, cwd=str(tmp_path),
    )
    dirs = json.loads(proc.stdout)
    for kind, module in (("proxy", "lvs_ios.py"), ("metaproxy", "lvs_proxy.py")):
        assert os.path.isfile(os.path.join(dirs[kind][0], module)), dirs
        assert dirs[kind][0].startswith(str(clean_venv)), dirs
