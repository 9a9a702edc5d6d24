"""The deployment files say what Chatsite does: docs/deploy.md's nginx site loads in a real
`nginx -t` and passes the socket and the SSE stream as they need; its systemd unit,
the Dockerfile and compose.yaml start the launcher `./run` starts, on the port and with
the settings the README documents; the containers' health check works against a real
Chatsite with production settings. (Docker itself cannot run on these machines.)"""

import configparser
import datetime
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings

from chatsite.database_url import database_settings
from tests.chatsite.test_settings import _production_app, get

BASE_DIR = Path(settings.BASE_DIR)
DEPLOY = (BASE_DIR / "docs" / "deploy.md").read_text()
LAUNCHER = ["python", "-m", "chatsite.launcher"]
HEALTH_CHECK = ["python", "-m", "chatsite.healthcheck"]


def fenced(language: str) -> str:
    """The one code block of docs/deploy.md in `language`."""
    [block] = re.findall(rf"```{language}\n(.*?)```", DEPLOY, re.S)
    return block


def documented_settings() -> set[str]:
    """Every setting the README's table and .env.example name."""
    readme = (BASE_DIR / "README.md").read_text()
    names = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    names |= set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    return names


def dockerfile() -> dict[str, list[str]]:
    """The Dockerfile's instructions (continued lines joined), by keyword."""
    text = re.sub(r"\\\n\s*", " ", (BASE_DIR / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.setdefault(keyword.upper(), []).append(rest.strip())
    return found


def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "compose.yaml").read_text())


def test_every_way_of_serving_starts_the_launcher_that_run_starts():
    run = (BASE_DIR / "run").read_text()
    unit = configparser.ConfigParser(interpolation=None)
    unit.read_string(fenced("ini"))

    assert '"$VENV/bin/python" -m chatsite.launcher' in run
    assert yaml.safe_load(dockerfile()["CMD"][0]) == LAUNCHER
    assert unit["Service"]["ExecStart"].split()[1:] == LAUNCHER[1:]
    assert unit["Service"]["ExecStart"].split()[0].endswith("/.venv/bin/python")


def test_the_container_listens_where_the_port_is_published():
    docker = dockerfile()
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(docker["ENV"])))
    app = compose()["services"]["app"]

    assert docker["EXPOSE"] == [env["API_PORT"]] == [app["environment"]["API_PORT"]]
    assert env["API_HOST"] == app["environment"]["API_HOST"] == "0.0.0.0"
    assert [p.rsplit(":", 1)[1] for p in app["ports"]] == [env["API_PORT"]]


def test_the_files_set_only_settings_the_readme_documents():
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(dockerfile()["ENV"])))
    app = compose()["services"]["app"]["environment"]
    known = documented_settings() | {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}

    assert set(env) - known == set()
    assert set(app) - known == set()
    assert set(re.findall(r"^- `([A-Z][A-Z0-9_]+)=", DEPLOY, re.M)) - known == set()


def test_the_database_and_images_live_on_the_volume():
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(dockerfile()["ENV"])))
    app = compose()["services"]["app"]

    assert dockerfile()["VOLUME"] == ["/data"]
    assert env["SQLITE_PATH"].startswith("/data/") and env["MEDIA_ROOT"].startswith("/data/")
    assert app["volumes"] == ["data:/data"]
    assert app["environment"]["MEDIA_ROOT"].startswith("/data/")


def test_compose_runs_the_app_on_its_postgresql_with_the_password_it_gives_it():
    services = compose()["services"]
    url = services["app"]["environment"]["DATABASE_URL"]
    postgres = services["postgres"]
    given = re.sub(r"\$\{POSTGRES_PASSWORD:\?[^}]*\}", "s3cret", url)  # as compose fills it in
    database = database_settings(given)

    assert "SQLITE_PATH" not in services["app"]["environment"]  # DATABASE_URL decides alone
    assert ":${POSTGRES_PASSWORD:?" in url
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD}"
    assert (database["HOST"], database["PORT"], database["PASSWORD"]) == ("postgres", "5432", "s3cret")
    assert database["USER"] == postgres["environment"]["POSTGRES_USER"]
    assert database["NAME"] == postgres["environment"]["POSTGRES_DB"]
    assert services["app"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_keeps_postgresql_on_a_volume_and_checks_it_is_ready():
    postgres = compose()["services"]["postgres"]
    check = postgres["healthcheck"]["test"]

    assert postgres["volumes"] == ["db:/var/lib/postgresql/data"]
    assert "db" in compose()["volumes"]
    assert check[:2] == ["CMD", "pg_isready"]
    assert check[check.index("--host") + 1] == "127.0.0.1"  # not the init server's socket
    assert check[check.index("--username") + 1] == postgres["environment"]["POSTGRES_USER"]
    assert check[check.index("--dbname") + 1] == postgres["environment"]["POSTGRES_DB"]
    assert "UTF8" in postgres["environment"]["POSTGRES_INITDB_ARGS"]  # Chinese in search


def test_redis_in_compose_needs_the_password_the_app_is_given():
    services = compose()["services"]

    assert ":${REDIS_PASSWORD" in services["app"]["environment"]["REDIS_URL"]
    assert services["redis"]["command"][1:3] == ["--requirepass", "${REDIS_PASSWORD}"]
    assert services["app"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_a_stop_leaves_time_for_the_drain():
    unit = configparser.ConfigParser(interpolation=None)
    unit.read_string(fenced("ini"))
    grace = compose()["services"]["app"]["stop_grace_period"]

    assert unit["Service"]["KillSignal"] == dockerfile()["STOPSIGNAL"][0] == "SIGTERM"
    assert float(unit["Service"]["TimeoutStopSec"]) > settings.CHATSITE_DRAIN_SECONDS
    assert float(grace.removesuffix("s")) > settings.CHATSITE_DRAIN_SECONDS


def test_the_health_checks_run_the_health_check_module():
    docker_check = dockerfile()["HEALTHCHECK"][0]

    assert yaml.safe_load(docker_check[docker_check.index("CMD ") + 4 :]) == HEALTH_CHECK
    assert compose()["services"]["app"]["healthcheck"]["test"] == ["CMD", *HEALTH_CHECK]


def test_the_containers_health_check_passes_against_production_settings(tmp_path: Path):
    # ALLOWED_HOSTS as an operator sets it: their public name only, not 127.0.0.1.
    served = contextmanager(_production_app)(tmp_path, ALLOWED_HOSTS="chat.example.com", PROXY_HEADERS="true")
    with served as port:
        env = {"API_PORT": str(port), "ALLOWED_HOSTS": "chat.example.com", "PATH": "/usr/bin:/bin"}
        passed = subprocess.run(
            [sys.executable, "-m", "chatsite.healthcheck"], cwd=BASE_DIR, env=env, timeout=30
        )
        # What a naive probe (Host: 127.0.0.1) gets: why the check asks as an allowed host.
        naive = get(port, "/healthz")
    assert passed.returncode == 0
    assert naive.status == 400


def test_the_health_check_fails_when_nothing_answers(tmp_path: Path):
    from chatsite.embedded_redis import free_port

    env = {"API_PORT": str(free_port()), "ALLOWED_HOSTS": "chat.example.com"}
    result = subprocess.run(
        [sys.executable, "-m", "chatsite.healthcheck"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 1
    assert "did not answer" in result.stderr


# --- nginx ---------------------------------------------------------------------------------


def nginx_locations() -> dict[str, str]:
    """docs/deploy.md's nginx `location` blocks, by path."""
    return dict(re.findall(r"location (\S+) \{(.*?)\n    \}", fenced("nginx"), re.S))


def test_the_sse_stream_is_not_buffered_and_outlasts_a_quiet_model():
    root = nginx_locations()["/"]
    timeout = re.search(r"proxy_read_timeout (\d+)s;", root)

    assert "proxy_buffering off;" in root
    assert timeout is not None and int(timeout.group(1)) > settings.OPENAI_READ_TIMEOUT


def test_the_chat_socket_is_upgraded_and_the_proxy_says_who_asked_and_how():
    locations = nginx_locations()
    socket = locations["/ws/"]

    assert "proxy_set_header Upgrade $http_upgrade;" in socket
    assert "proxy_set_header Connection $connection_upgrade;" in socket
    for block in (socket, locations["/"]):
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in block
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in block


def test_nginx_passes_to_the_default_port_and_takes_the_largest_import():
    site = fenced("nginx")
    size = re.search(r"client_max_body_size (\d+)m;", site)

    assert f"server 127.0.0.1:{settings.API_PORT};" in site
    assert size is not None and int(size.group(1)) * 1024 * 1024 >= settings.CHAT_IMPORT_MAX_BYTES


@pytest.fixture
def certificate(tmp_path: Path) -> Iterator[Path]:
    """A self-signed certificate and key where the site names Let's Encrypt's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chat.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path / "tls"
    folder.mkdir()
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    yield folder


def test_nginx_loads_the_site(tmp_path: Path, certificate: Path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: ./run test installs it"
    site = fenced("nginx").replace("/etc/letsencrypt/live/chat.example.com/", f"{certificate}/")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\n{site}\n}}\n"
    )

    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr
