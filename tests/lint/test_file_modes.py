"""Files with secrets are created private, and secrets are never traced.

scripts/tls-cert as root and as an unprivileged user (the script copied where that user can run
it): tls.key 0640 to nginx's group (101) or at least never readable by others, the CA's key
outside TLS_DIR (the folder compose mounts into nginx). `DEBUG=1 scripts/up --check` traces every
command but prints none of the secrets it generates. (scripts/backup's 0600-in-0700 dumps are
checked on a live stack: tests/stack/test_backup_restore.py.)
"""

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.lint.test_up_checks import up

ROOT = Path(__file__).resolve().parents[2]


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def tls_cert(repo, tls_dir, *args, prefix=()):
    """scripts/tls-cert ARGS of `repo`, run through `prefix` (e.g. setpriv as another user)."""
    env = {"PATH": os.environ["PATH"], "TLS_DIR": str(tls_dir), "ENV_FILE": "/dev/null"}
    return subprocess.run(
        [*prefix, str(repo / "scripts/tls-cert"), *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def assert_private_layout(tls_dir):
    """What nginx's mount holds, and where the CA key went."""
    ca_dir = Path(f"{tls_dir}-ca")
    assert sorted(p.name for p in tls_dir.iterdir()) == ["ca.crt", "tls.crt", "tls.key"], (
        "expected TLS_DIR (mounted into nginx) to hold only the certificate, its key and the CA's "
        f"certificate; found {sorted(p.name for p in tls_dir.iterdir())}"
    )
    key = tls_dir / "tls.key"
    assert mode(key) == 0o640, f"expected tls.key mode 640, found {mode(key):o}"
    assert mode(ca_dir) == 0o700, f"expected the CA folder mode 700, found {mode(ca_dir):o}"
    assert mode(ca_dir / "ca.key") & 0o077 == 0, (
        f"expected ca.key private, found {mode(ca_dir / 'ca.key'):o}"
    )
    return key


def test_tls_cert_as_root_gives_the_key_to_nginx_group_only(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the root case needs root (CI runs as root); the next test covers a user")
    made = tls_cert(ROOT, tmp_path / "tls")
    assert made.returncode == 0, made.stderr
    key = assert_private_layout(tmp_path / "tls")
    assert (key.stat().st_uid, key.stat().st_gid) == (0, 101)


def test_tls_cert_as_a_user_never_widens_the_key(tmp_path, request):
    """Not root and not in group 101: the key stays 0640 with the user's group, and the script
    says how to hand it to nginx instead of making it world-readable (it used to be 0644)."""
    if os.geteuid() == 0:
        # Run as `nobody`, from a copy of the two files it needs in a folder it can read (pytest's
        # own tmp_path is private to root).
        tmp_path = Path(tempfile.mkdtemp(prefix="chatstack-modes-"))
        request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
        repo = tmp_path / "repo"
        (repo / "scripts").mkdir(parents=True)
        for name in ("tls-cert", "lib.sh"):
            shutil.copy2(ROOT / "scripts" / name, repo / "scripts" / name)
        work = tmp_path / "work"
        work.mkdir()
        for path in (tmp_path, repo, repo / "scripts"):
            path.chmod(0o755)
        os.chown(work, 65534, 65534)
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        repo, work, prefix = ROOT, tmp_path, []
    made = tls_cert(repo, work / "tls", prefix=prefix)
    assert made.returncode == 0, made.stderr
    key = assert_private_layout(work / "tls")
    assert key.stat().st_uid == (65534 if prefix else os.geteuid())
    if key.stat().st_gid != 101:
        assert "sudo chgrp 101" in made.stderr, made.stderr


def test_tls_cert_moves_an_old_ca_key_out_of_the_mounted_folder(tmp_path):
    """A TLS_DIR from an earlier version (ca.key beside tls.key): scripts/up warns; --renew moves
    the CA, keeps it (the new certificate is signed by the same CA) and leaves no key but
    tls.key behind."""
    tls = tmp_path / "tls"
    assert tls_cert(ROOT, tls).returncode == 0
    ca_dir = Path(f"{tls}-ca")
    for name in ("ca.key", "ca.crt"):
        shutil.move(ca_dir / name, tls / name)
    shutil.rmtree(ca_dir)
    ca_before = (tls / "ca.crt").read_bytes()
    checked = up(tmp_path, "--check", NGINX_TLS="on")
    assert checked.returncode == 0, checked.stderr
    assert "ca.key is mounted into nginx" in checked.stderr, "expected scripts/up to warn"
    renewed = tls_cert(ROOT, tls, "--renew")
    assert renewed.returncode == 0, renewed.stderr
    assert "moved the CA key out of" in renewed.stdout
    assert_private_layout(tls)
    assert (tls / "ca.crt").read_bytes() == ca_before
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tls / "ca.crt"), str(tls / "tls.crt")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_debug_trace_of_up_prints_no_generated_secret(tmp_path):
    """DEBUG=1 traces every command (set -x); the secrets written to a new env file are not."""
    result = up(tmp_path, "--check", DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert "+ " in result.stderr, "expected DEBUG=1 to trace commands"
    secrets = re.findall(r"^([A-Z_]+)=([0-9a-f]{64})$", (tmp_path / ".env").read_text(), re.M)
    assert {name for name, _ in secrets} >= {
        "DJANGO_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
    }
    for name, value in secrets:
        assert value not in result.stdout + result.stderr, f"expected {name} not to be traced"
    assert mode(tmp_path / ".env") == 0o600
