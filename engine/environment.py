"""Where the engine's pieces live and the environment every engine command runs with.

One owner for both ways of running the engine: the Automation API driver (`python -m engine`)
and the plain CLI (`eval "$(python -m engine env)"; pulumi preview`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from engine.pins import pin
from gpu_model_serving import PACKAGE_NAME, PACKAGE_VERSION

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".bin"
# <root>/bin/pulumi, as the Automation API wants it: the CLI with no language host beside it.
ENGINE_CLI_ROOT = BIN / "pulumi-engine"
# The CLI beside the Python language host, as a usual Pulumi install has it (plain CLI path).
PLAIN_CLI_DIR = BIN / "cli"
STATE = REPO / ".state"
DEFAULT_PULUMI_HOME = STATE / "pulumi-home"
DEFAULT_BACKEND_DIR = STATE / "pulumi-state"
# The local registry's own CA (scripts/docker.sh), alone in its directory.
LOCAL_REGISTRY_CA_DIR = STATE / "registry" / "tls" / "ca"
# Where Go looks for CA certificates on Linux when SSL_CERT_DIR is not set.
GO_DEFAULT_CERT_DIRS = ("/etc/ssl/certs", "/etc/pki/tls/certs")
# Holds the buildx builder registration the docker-build provider looks up by name.
DOCKER_CONFIG_DIR = STATE / "docker-config"
# The policy pack every preview and up runs, with the program's virtualenv.
POLICY_PACK_DIR = REPO / "policy"
POLICY_PYTHON = REPO / ".venv" / "bin" / "python"
# Guards only local dev state; real environments use a KMS (see README, "State and secrets").
LOCAL_PASSPHRASE = "dev-only-local-state-passphrase"


# The Python program's pins, which the engine and its plugins follow.
REQUIREMENTS = REPO / "requirements.txt"
PULUMI_VERSION = pin("pulumi", REQUIREMENTS)
# The engine loads exactly the plugin versions the Python packages announce.
REQUIRED_PLUGINS = {
    "kubernetes": pin("pulumi-kubernetes", REQUIREMENTS),
    "docker-build": pin("pulumi-docker-build", REQUIREMENTS),
}


class EngineMissingError(Exception):
    """The CLI or a provider plugin is absent or of the wrong version."""


def engine_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the engine's settings added.

    Settings the caller already made (a backend, a passphrase, a PULUMI_HOME) are kept.
    """
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.setdefault("PULUMI_HOME", str(DEFAULT_PULUMI_HOME))
    # A workflow passes an empty value for stacks with no bucket backend (dev).
    if not env.get("PULUMI_BACKEND_URL"):
        env["PULUMI_BACKEND_URL"] = DEFAULT_BACKEND_DIR.as_uri()
    if "PULUMI_CONFIG_PASSPHRASE_FILE" not in env:
        env.setdefault("PULUMI_CONFIG_PASSPHRASE", LOCAL_PASSPHRASE)
    env.setdefault("DOCKER_CONFIG", str(DOCKER_CONFIG_DIR))
    # The docker-build provider checks pushed images in the local registry over TLS: Go adds
    # every certificate of each SSL_CERT_DIR directory to the system bundle.
    cert_dirs = env.get("SSL_CERT_DIR", os.pathsep.join(GO_DEFAULT_CERT_DIRS)).split(os.pathsep)
    if str(LOCAL_REGISTRY_CA_DIR) not in cert_dirs:
        env["SSL_CERT_DIR"] = os.pathsep.join([str(LOCAL_REGISTRY_CA_DIR), *cert_dirs])
    env.update(
        {
            # Offline: no update check, no plugin download (a missing plugin is an error),
            # providers only from PULUMI_HOME at their pinned versions, not from PATH.
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
            "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        }
    )
    return env


def private_backend_environment(
    state_dir: Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """`engine_environment(base)` with a file backend of its own in `state_dir` (created), for
    benches and tests whose stacks must not touch the project's."""
    state_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if base is None else base)
    return engine_environment({**env, "PULUMI_BACKEND_URL": state_dir.as_uri()})


def ensure_local_backend(env: dict[str, str]) -> None:
    """Create the directory of a file:// backend: the engine refuses a missing one."""
    url = env["PULUMI_BACKEND_URL"]
    if url.startswith("file://"):
        Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)


def install_policy_analyzer(env: dict[str, str]) -> None:
    """Write the analyzer plugin policy-python into PULUMI_HOME.

    With no Python language host visible, the engine starts a Python policy pack by running
    `pulumi-analyzer-policy-python <engine address> .` in the pack's folder; the pack serves
    itself when its __main__.py runs. The engine looks in PULUMI_HOME (PULUMI_IGNORE_AMBIENT_PLUGINS
    keeps it off PATH) and may pass a bare PATH, so the script names its interpreter absolutely.
    """
    plugin = (
        Path(env["PULUMI_HOME"])
        / "plugins"
        / f"analyzer-policy-python-v{pin('pulumi-policy', REQUIREMENTS)}"
        / "pulumi-analyzer-policy-python"
    )
    _write_script(plugin, f"exec {shlex.quote(str(POLICY_PYTHON))} -u __main__.py")


def install_component_package(env: dict[str, str]) -> None:
    """Install the project's component package (provider/) as a resource plugin in PULUMI_HOME,
    for programs in other languages (examples/model-server-yaml).

    The v3.79 Python language host that builds here cannot run a source plugin (it creates a
    virtualenv in provider/ and has the engine fetch every provider the repository's virtualenv
    holds, offline or not), so the plugin is a script that runs provider/__main__.py with the
    program's virtualenv: the engine starts it as it starts any provider binary.
    """
    plugin = (
        Path(env["PULUMI_HOME"])
        / "plugins"
        / f"resource-{PACKAGE_NAME}-v{PACKAGE_VERSION}"
        / f"pulumi-resource-{PACKAGE_NAME}"
    )
    main = REPO / "provider" / "__main__.py"
    _write_script(plugin, f"exec {shlex.quote(str(POLICY_PYTHON))} -u {shlex.quote(str(main))}")


def _write_script(path: Path, command: str) -> None:
    """An executable `#!/bin/sh` script running `command` with the script's arguments."""
    script = f'#!/bin/sh\n{command} "$@"\n'
    if path.is_file() and path.read_text() == script:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(0o755)


def check_engine(env: dict[str, str]) -> None:
    """Fail with what to run when the CLI or a plugin is missing, before the engine starts."""
    try:
        found = subprocess.run(
            [str(ENGINE_CLI_ROOT / "bin" / "pulumi"), "version"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = "none"
    if found != f"v{PULUMI_VERSION}":
        raise EngineMissingError(
            f"needs the Pulumi CLI v{PULUMI_VERSION} (found: {found}); run `make toolchain`"
        )
    plugins = Path(env["PULUMI_HOME"]) / "plugins"
    missing = [
        f"{name} {version}"
        for name, version in REQUIRED_PLUGINS.items()
        if not (plugins / f"resource-{name}-v{version}" / f"pulumi-resource-{name}").is_file()
    ]
    if missing:
        raise EngineMissingError(
            f"provider plugin(s) {', '.join(missing)} not installed in {plugins}; "
            "run `make toolchain` (plugins are never downloaded)"
        )


def shell_exports(env: dict[str, str]) -> str:
    """The plain CLI's environment as `export` lines for `eval`."""
    # The v3.79 language host runs whatever `python` PATH gives: the program's venv comes first.
    path = os.pathsep.join([str(REPO / ".venv" / "bin"), str(PLAIN_CLI_DIR), "$PATH"])
    lines = [f'export PATH="{path}"']
    lines += [
        f"export {key}={shlex.quote(value)}"
        for key, value in sorted(env.items())
        if key.startswith("PULUMI_") or key in ("DOCKER_CONFIG", "SSL_CERT_DIR")
    ]
    return "\n".join(lines)
