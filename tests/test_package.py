"""The package as a user gets it: build the wheel, install it into a fresh virtualenv outside
the checkout, and run riffd from another folder.

The fresh venv is made on the base interpreter (not the checkout's .venv), so the checkout's
editable riffd (a finder installed by a .pth in .venv) never comes along. It sees the
dependencies (torch, numpy, ...) through one folder of links to .venv's site-packages entries,
less riffd's own (the editable finder, its .pth and riffd's dist-info): installing torch from the
network would take minutes. pip resolves the wheel's dependencies against those links with
``--no-index``, so a dependency the wheel asks for and the environment lacks still fails here.

python-daemon (whose import name, ``daemon``, riffd's folder used to take) is installed beside
riffd from wheels downloaded once into pytest's cache (.pytest_cache); without them and without
a network the test fails and says so.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "engine", "daemon", "training", "configs"]
OWN_ENTRIES = ("__editable__", "riffd-", "riffd.", "__pycache__")   # .venv entries left out
SIDE_BY_SIDE = ["python-daemon"]      # pure-Python packages installed beside riffd


def _run(command: list[str], cwd: Path, timeout_s: float = 120, env: dict | None = None,
         check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} exited with {done.returncode}:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _pip(*args: str, cwd: Path, timeout_s: float = 180, check: bool = True):
    return _run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                timeout_s=timeout_s, check=check)


def _side_by_side_wheels(cache: Path, work: Path) -> list[Path]:
    """python-daemon's wheels (and its dependency lockfile), downloaded once into ``cache``."""
    wheels = sorted(cache.glob("*.whl"))
    if not any(w.name.startswith("python_daemon-") for w in wheels):
        done = _pip("download", "--only-binary=:all:", "--dest", str(cache), *SIDE_BY_SIDE,
                    cwd=work, timeout_s=120, check=False)
        if done.returncode != 0:
            pytest.fail("could not download python-daemon to install beside riffd (is PyPI "
                        f"reachable? pip said: {done.stderr.strip()[-800:]}); put its wheels "
                        f"(python_daemon-*.whl, lockfile-*.whl) into {cache} to run offline")
        wheels = sorted(cache.glob("*.whl"))
    return wheels


@pytest.fixture(scope="module")
def installed(tmp_path_factory, request):
    """The wheel built from a copy of the checkout and installed into a fresh venv.

    Returns a dict: ``wheel`` (Path), ``venv`` (Path), ``site`` (its site-packages),
    ``bin`` (its scripts folder), ``elsewhere`` (an empty folder outside the checkout to run
    from), ``wheel_bytes``, ``build_s`` and ``install_s`` (seconds).
    """
    root = tmp_path_factory.mktemp("package")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:             # a copy: the build's build/ and egg-info stay out of the checkout
        item = CHECKOUT / name
        if item.is_dir():
            shutil.copytree(item, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, source / name)
    t0 = time.monotonic()
    _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(root / "dist"),
         str(source), cwd=root)
    build_s = time.monotonic() - t0
    (wheel,) = (root / "dist").glob("riffd-*.whl")

    venv = root / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=root).stdout.strip())
    deps = root / "deps"                        # the dependencies, without the checkout's riffd
    deps.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not entry.name.startswith(OWN_ENTRIES) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    (site / "riffd-test-deps.pth").write_text(f"{deps}\n")

    t0 = time.monotonic()
    _pip("--python", str(python), "install", "--no-index", str(wheel), cwd=root)
    install_s = time.monotonic() - t0
    cache = request.config.cache.mkdir("riffd-side-by-side-wheels")
    _pip("--python", str(python), "install", "--no-index", "--no-deps",
         *map(str, _side_by_side_wheels(cache, root)), cwd=root)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB, built in {build_s:.1f} s, "
          f"installed into a fresh venv in {install_s:.1f} s")
    return {"wheel": wheel, "venv": venv, "site": site, "bin": venv / "bin",
            "elsewhere": elsewhere, "wheel_bytes": wheel.stat().st_size,
            "build_s": build_s, "install_s": install_s}


def _riffd(pkg: dict, *args: str, timeout_s: float = 120, check: bool = True, env=None):
    """The installed ``riffd`` command, run from a folder outside the checkout."""
    return _run([str(pkg["bin"] / "riffd"), *args], cwd=pkg["elsewhere"], timeout_s=timeout_s,
                check=check, env=env)


def _python(pkg: dict, code: str, timeout_s: float = 120) -> str:
    return _run([str(pkg["bin"] / "python"), "-c", code], cwd=pkg["elsewhere"],
                timeout_s=timeout_s).stdout


def test_the_wheel_installs_riffd_and_nothing_else(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        record_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
        record = [line.split(",")[0] for line in
                  wheel.read(record_name).decode().splitlines() if line]
    top_level = {path.split("/")[0] for path in record}
    assert top_level == {"riffd", record_name.split("/")[0]}, top_level
    assert not any(path.startswith("riffd/__init__") for path in record)   # riffd: a namespace
    for data in ("riffd/engine/models/melody_erk.safetensors",
                 "riffd/engine/models/spectral_default.safetensors",
                 "riffd/daemon/data/seed_phrase_eb.mid",
                 "riffd/configs/melody_erk.toml", "riffd/configs/serve.toml"):
        assert data in record, f"{data} is not in the wheel"
    shipped = {p.name for p in (CHECKOUT / "configs").glob("*.toml")}
    assert shipped <= {Path(p).name for p in record if p.startswith("riffd/configs/")}
    # the bundled models are most of it; anything much bigger has swallowed something else
    assert installed["wheel_bytes"] < 30e6, installed["wheel_bytes"]


def test_every_module_imports_from_the_fresh_venv_beside_python_daemon(installed):
    report = json.loads(_python(installed, """
import daemon                       # python-daemon first: its name must not shadow riffd's
import importlib, json, pkgutil, riffd
names = []
for package in ("riffd.engine", "riffd.daemon", "riffd.training", "riffd.configs"):
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if info.name.endswith(".__main__"):      # runs the command line
            continue
        importlib.import_module(info.name)
        names.append(info.name)
import sys
files = {n: getattr(sys.modules[n], "__file__", None) for n in names}
print(json.dumps({"path": list(riffd.__path__), "files": files, "daemon": daemon.__file__,
                  "context": daemon.DaemonContext.__name__}))
"""))
    assert report["daemon"] == str(installed["site"] / "daemon" / "__init__.py")
    assert report["context"] == "DaemonContext"
    site = str(installed["site"].resolve())
    assert report["path"] == [str(installed["site"] / "riffd")]
    assert len(report["files"]) > 80                  # every module, not just the packages
    outside = {n: f for n, f in report["files"].items()
               if not str(Path(f).resolve()).startswith(site)}
    assert not outside, f"imported from outside the fresh venv: {outside}"
    assert "riffd.training.recipe" in report["files"] and "riffd.daemon.cli" in report["files"]


def test_commands_work_from_another_folder(installed):
    assert "serve" in _riffd(installed, "--help").stdout
    listed = _riffd(installed, "train", "--list").stdout
    names = [line.split()[0] for line in listed.splitlines() if line and line[0] != " "]
    recipes = {p.stem for p in (CHECKOUT / "configs").glob("*.toml")} - {"serve", "trio"}
    assert recipes <= set(names), listed
    assert "melody_lstm" in next(line for line in listed.splitlines()
                                 if line.startswith("melody_erk "))
    # riffd train's own code, one interpreter for the rest (each start imports torch: seconds)
    loaded = json.loads(_python(installed, """
import contextlib, io, json
from riffd.daemon.serve_config import load_serve_config
from riffd.training.cli import main
from riffd.training.recipe import load_recipe
shown, wrong = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(shown):
    show_status = main(["train", "--show", "melody_erk"])
with contextlib.redirect_stderr(wrong):
    wrong_status = main(["train", "no_such_recipe"])
recipe = load_recipe("melody_erk", ["train.epochs=1"])
print(json.dumps({"show": [show_status, shown.getvalue()], "wrong": [wrong_status, wrong.getvalue()],
                  "recipe": [recipe.name, recipe.train.epochs],
                  "serve": load_serve_config("serve").tempo}))
"""))
    shown = tomllib.loads(loaded["show"][1])
    assert loaded["show"][0] == 0 and shown["name"] == "melody_erk"
    assert shown["family"] == "melody_lstm"
    assert loaded["wrong"][0] == 2 and "melody_erk" in loaded["wrong"][1]  # names the shipped ones
    assert loaded["recipe"] == ["melody_erk", 1] and loaded["serve"] == 120.0
    assert not list(installed["elsewhere"].iterdir())      # none of this wrote a file


def test_doctor_answers_in_json(installed, tmp_path):
    done = _riffd(installed, "doctor", "--json", check=False,
                  env={"XDG_RUNTIME_DIR": str(tmp_path)})
    report = json.loads(done.stdout)
    assert done.returncode == (0 if report["can_serve"] else 1)
    checks = {check["name"]: check for check in report["checks"]}
    assert {"ALSA sequencer", "JACK server", "python-rtmidi", "FluidSynth"} <= set(checks)
    assert all(check["state"] in ("OK", "MISSING", "N/A") for check in checks.values())
    assert all(check["fix"] for check in checks.values() if check["state"] == "MISSING")


def test_serve_with_the_bundled_model_and_a_shipped_config(installed, jack_server, tmp_path):
    from riffd.daemon.client import RiffdClient, RiffdUnavailable
    control, events = f"ipc://{tmp_path}/control", f"ipc://{tmp_path}/events"
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([str(installed["bin"] / "riffd"), "serve", "--config", "serve",
                             "--midi-api", "jack", "--client-name", "riffd-wheel",
                             "--control", control, "--events", events, "--realtime", "off"],
                            cwd=installed["elsewhere"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "JACK_DEFAULT_SERVER": jack_server.name})
    try:
        deadline = time.monotonic() + 60
        with RiffdClient(control, timeout_s=0.5) as client:
            while True:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    status = client.status()
                    break
                except RiffdUnavailable:
                    assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        assert status["model"]["name"] == "melody_erk", status["model"]
        assert status["ports"]["out"].startswith("riffd-wheel:")
        time.sleep(1.0)                                        # a second of serving
        shutdown = _riffd(installed, "ctl", "--endpoint", control, "shutdown")
        assert proc.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
        assert "ok" in shutdown.stdout.lower() or shutdown.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_recipes_and_serve_configs_by_name_from_any_folder(tmp_path, monkeypatch):
    from riffd.daemon.serve_config import ServeConfigError, load_serve_config
    from riffd.training.recipe import RecipeError, list_recipes, load_recipe
    monkeypatch.chdir(tmp_path)                     # no configs/ here
    names = [name for name, _, _ in list_recipes()]
    assert "melody_erk" in names and "serve" not in names
    assert all(summary and len(summary) <= 100 for _, _, summary in list_recipes())
    for given in ("melody_erk", "melody_erk.toml", "configs/melody_erk.toml"):
        assert load_recipe(given).train.epochs == load_recipe("melody_erk").train.epochs
    # a file of that name in the current folder is the user's and wins over the shipped one
    (tmp_path / "melody_erk.toml").write_text('family = "melody_lstm"\n[train]\nepochs = 3\n')
    assert load_recipe("melody_erk.toml").train.epochs == 3
    assert load_recipe("melody_erk").train.epochs != 3
    with pytest.raises(RecipeError, match="riffd train --list"):
        load_recipe("other/melody_erk.toml")        # a path that does not exist stays a path
    assert load_serve_config("serve").tempo == 120.0
    assert load_serve_config("configs/serve.toml").midi_api == "auto"
    with pytest.raises(ServeConfigError, match="serve"):
        load_serve_config("melody_erk")             # a recipe is not a serve config
