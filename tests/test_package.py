"""botkit as users install it: versioned, typed, licensed, its imports declared, and an
image that runs `botkit serve`.

No Docker daemon runs here or in CI, so the image is never built: the Dockerfile is read
with Docker's own parser (the `dockerfile` package), linted with hadolint, and its
command and health check are run as the container would run them.
"""

from __future__ import annotations

import ast
import email
import importlib.metadata
import os
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

import dockerfile
import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import botkit
from botkit.cli import main
from tests.loopback import free_port

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]


def test_the_version_is_the_one_in_pyproject_read_from_the_installed_metadata() -> None:
    assert botkit.__version__ == VERSION == importlib.metadata.version("botkit")
    printed = subprocess.run(
        [sys.executable, "-c", "import botkit; print(botkit.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout == f"{VERSION}\n"


def test_botkit_version_prints_it_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"botkit {VERSION}\n"


def test_the_changelog_has_an_entry_for_this_version() -> None:
    headings = [
        line for line in (REPO / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")
    ]
    assert headings[0] == "## [Unreleased]"
    assert any(h.startswith(f"## [{VERSION}] - ") for h in headings), headings


def test_mypy_strict_sees_botkits_types_in_a_users_code(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    """Without py.typed, mypy skips botkit ("missing library stubs or py.typed marker")
    and everything it returns is Any; with it, a misuse is caught."""
    (tmp_path / "support.py").write_text(
        "from __future__ import annotations\n\n"
        "import botkit\n"
        "from botkit import IncomingMessage, Reply, Usage\n\n\n"
        "def shout(reply: Reply) -> str:\n"
        "    return reply.text.upper()\n\n\n"
        "def tokens(usage: Usage) -> int:\n"
        "    return usage.prompt_tokens + usage.completion_tokens\n\n\n"
        'message = IncomingMessage(channel="web", bot="shop", conversation_id="c", '
        'user_id="u", text="hi")\n'
        "version: str = botkit.__version__\n"
    )
    (tmp_path / "mistake.py").write_text(
        'from botkit import Reply\n\ncount: int = Reply(text="hi", conversation_id="c").text\n'
    )
    # A warm cache between runs takes the check from seconds to a fraction of one.
    cache_plugin = getattr(pytestconfig, "cache", None)  # absent with -p no:cacheprovider
    cache = cache_plugin.mkdir("mypy-user") if cache_plugin else tmp_path / "cache"
    # Run from outside the repository, so botkit is found where a user's mypy finds it:
    # installed, not as a folder beside the code.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), "support.py"]
        + ["mistake.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors == [
        'mistake.py:3: error: Incompatible types in assignment (expression has type "str", '
        'variable has type "int")  [assignment]'
    ], result.stdout


def _declared() -> set[str]:
    """The distributions pyproject.toml asks for, and what their extras bring in
    (`psycopg[pool]` declares psycopg-pool)."""
    requirements = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in PROJECT["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra]
    names = {canonicalize_name(r.name) for r in requirements}
    for requirement in requirements:
        try:
            brought = [Requirement(r) for r in importlib.metadata.requires(requirement.name) or []]
        except importlib.metadata.PackageNotFoundError:
            continue
        for r in brought:
            if r.marker and any(r.marker.evaluate({"extra": e}) for e in requirement.extras):
                names.add(canonicalize_name(r.name))
    return names


def _imported() -> dict[str, Path]:
    """Every top-level module botkit's code imports, with a file that imports it."""
    modules: dict[str, Path] = {}
    for path in sorted((REPO / "botkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.partition(".")[0], path.relative_to(REPO))
    return modules


def test_every_package_botkit_imports_is_declared_in_pyproject() -> None:
    declared = _declared()
    provided_by = importlib.metadata.packages_distributions()
    undeclared = []
    for module, path in _imported().items():
        if module in sys.stdlib_module_names or module in ("botkit", "__future__"):
            continue
        # An optional package that is not installed here is known by its own name only.
        distributions = provided_by.get(module, [module.replace("_", "-")])
        if not declared & {canonicalize_name(d) for d in distributions}:
            undeclared.append(f"{path} imports {module} ({', '.join(distributions)})")
    assert not undeclared, "declare these in pyproject.toml:\n" + "\n".join(undeclared)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--directory", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return out


def test_the_wheel_carries_the_license_and_the_typed_marker(dist: Path) -> None:
    (wheel,) = dist.glob("botkit-*.whl")
    info = f"botkit-{VERSION}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        license_text = archive.read(f"{info}/licenses/LICENSE")
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
    assert "botkit/py.typed" in names
    assert license_text == (REPO / "LICENSE").read_bytes()
    assert license_text.startswith(b"MIT License\n")
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "MIT"
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_the_sdist_carries_the_license_and_the_changelog(dist: Path) -> None:
    (sdist,) = dist.glob("botkit-*.tar.gz")
    root = f"botkit-{VERSION}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    for name in ("LICENSE", "CHANGELOG.md", "README.md", "botkit/py.typed", "pyproject.toml"):
        assert f"{root}/{name}" in names


# The Dockerfile, read as Docker reads it.

Command = dockerfile.Command


def _stages() -> list[list[Command]]:
    stages: list[list[Command]] = []
    for command in dockerfile.parse_file(str(REPO / "Dockerfile")):
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def _one(stage: list[Command], cmd: str) -> Command:
    (command,) = [c for c in stage if c.cmd == cmd]
    return command


def _env(stage: list[Command]) -> dict[str, str]:
    pairs = [c.value for c in stage if c.cmd == "ENV"]
    return {p[i]: p[i + 1] for p in pairs for i in range(0, len(p), 2)}


def _option(args: tuple[str, ...] | list[str], name: str) -> str:
    return args[list(args).index(name) + 1]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_installs_the_wheel_built_in_the_first_stage_not_the_source() -> None:
    build, image = _stages()
    assert build[0].value[-2:] == ("AS", "build")
    assert image[0].value[0].endswith("-slim")
    wheels = [c for c in build if c.cmd == "RUN" and "pip wheel" in c.value[0]]
    assert len(wheels) == 1 and "--wheel-dir /wheels" in wheels[0].value[0]
    # The final stage copies no Python source: botkit arrives only as the wheel.
    copied = [source for c in image if c.cmd == "COPY" for source in c.value[:-1]]
    assert copied and not [s for s in copied if s in (".", "botkit") or s.endswith(".py")]
    (install,) = [c for c in image if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install.flags
    assert "--no-index --find-links /wheels" in install.value[0]
    assert '"botkit[all]"' in install.value[0]


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    _, image = _stages()
    users = [c for c in image if c.cmd == "USER"]
    uid, _, gid = users[-1].value[0].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid != "0"
    # Nothing runs after it as root, and the account exists with that uid.
    assert all(c.cmd != "RUN" for c in image[image.index(users[-1]) :])
    (account,) = [c for c in image if c.cmd == "RUN" and "useradd" in c.value[0]]
    assert f"--uid {uid}" in account.value[0]


def test_the_image_serves_on_every_interface_with_a_health_check_and_a_bot_home() -> None:
    _, image = _stages()
    assert _one(image, "ENTRYPOINT").value == ("botkit",)
    cmd = _one(image, "CMD").value
    assert cmd[0] == "serve" and _option(cmd, "--host") == "0.0.0.0"
    port = _option(cmd, "--port")
    assert _one(image, "EXPOSE").value == (port,)
    health = _one(image, "HEALTHCHECK").value
    assert health[0] == "CMD" and f"http://127.0.0.1:{port}/healthz" in health[-1]
    env = _env(image)
    home = env["BOTKIT_HOME"]
    assert _one(image, "WORKDIR").value == (home,)
    copied_to = {c.value[-1] for c in image if c.cmd == "COPY"}
    assert {f"{home}/prompts", f"{home}/bots"} <= copied_to
    # State goes to a volume the unprivileged user owns, not into the (read-only) home.
    (volume,) = _one(image, "VOLUME").value
    assert env["BOTKIT_STORE_URL"] == f"sqlite:///{volume}/botkit.db"
    assert f"chown botkit:botkit {volume}" in _one(image, "RUN").value[0]


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything is left out unless named again with "!"
    sources = [
        source
        for c in dockerfile.parse_file(str(REPO / "Dockerfile"))
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags)
        for source in c.value[:-1]
    ]
    for source in sources:
        assert (REPO / source).exists(), source
        assert f"!{source}" in ignore, f".dockerignore leaves out {source}"


def _healthy(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True).returncode == 0


def test_the_images_command_serves_the_demo_bot_and_passes_its_health_check(
    tmp_path: Path,
) -> None:
    """The container's command, run here: the image's ENV with its folders mapped onto
    this machine (the home holds what the COPYs put there, the volume is a temp folder),
    and loopback with a free port for 0.0.0.0:8080."""
    _, image = _stages()
    env = _env(image)
    (volume,) = _one(image, "VOLUME").value
    cmd = list(_one(image, "CMD").value)
    port = _option(cmd, "--port")
    free = str(free_port())
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = free
    health = [sys.executable, *_one(image, "HEALTHCHECK").value[2:]]
    health[-1] = health[-1].replace(f":{port}/", f":{free}/")
    environment = os.environ | {
        "BOTKIT_HOME": str(REPO),
        "BOTKIT_STORE_URL": env["BOTKIT_STORE_URL"].replace(volume, str(tmp_path)),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "botkit", *cmd],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{free}/healthz")
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                time.sleep(0.05)
        assert _healthy(health)
        assert (tmp_path / "botkit.db").exists()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        assert not _healthy(health)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_compose_runs_three_workers_on_redis_behind_one_address() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 3
    assert worker["build"] == "."
    assert worker["environment"]["BOTKIT_STORE_URL"].startswith("redis://redis:")
    assert worker["command"][:4] == ["serve", "--host", "0.0.0.0", "--port"]
    assert services["redis"]["image"].startswith("redis:")
    assert services["proxy"]["ports"] == ["8080:8080"]
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    assert "server worker:8080;" in conf and "proxy_buffering off;" in conf
    # The proxy's config is mounted from where it is.
    mounted = services["proxy"]["volumes"][0].split(":")[0]
    assert (REPO / mounted).is_file()
