"""Renders every kustomization once per session, in a temporary copy with throw-away secrets."""

import functools
import shutil

import kubernetes_validate.utils
import pytest
import yaml

from tests.k8s import manifests

# kubernetes-validate reads its 1.8 MB definitions file again for every object; the schema files
# never change, so read each once (an order of magnitude faster, same verdicts).
kubernetes_validate.utils.schema_contents = functools.cache(
    kubernetes_validate.utils.schema_contents
)

# Made only inside the temporary copy, never in k8s/:
#   defaults:  the base plus a Secret, nothing else: compose's defaults, for value parity
#   production-loadbalancer: production with components/loadbalancer instead of the Gateway
#   production-cert-manager: production plus the k8s/README.md recipe "TLS with cert-manager"
#   production-managed-db: production with its commented components/postgres-managed line in
#                          place of components/postgres-cnpg (the one-line switch it documents)
DEFAULTS_OVERLAY = """\
namespace: chat  # the Secret must share the base's namespace for kustomize to link it
resources: [../../base]
secretGenerator:
  - name: chat-secrets
    envs: [secrets.env]
"""


VARIANTS = (
    "defaults",
    "production-loadbalancer",
    "production-cert-manager",
    "production-managed-db",
)
CNPG_LINE = "  - ../../components/postgres-cnpg\n"
MANAGED_LINE = "  # - ../../components/postgres-managed\n"


def switch_to_managed_db(text):
    """The production kustomization with the managed database instead of CloudNativePG: the
    commented components line swapped in, nothing else changed."""
    assert CNPG_LINE in text and MANAGED_LINE in text, (
        "expected production's components to list postgres-cnpg and, commented out below it,"
        " postgres-managed (k8s/README.md, Data tier)"
    )
    return text.replace(CNPG_LINE, "").replace(MANAGED_LINE, MANAGED_LINE.replace("# ", ""))


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """A copy of k8s/ and nginx/ with generated secrets.env files (removed with the temp dir)."""
    root = manifests.make_tree(tmp_path_factory.mktemp("k8s-tree"))
    overlays = root / "k8s/overlays"
    (overlays / "defaults").mkdir()
    (overlays / "defaults/kustomization.yaml").write_text(DEFAULTS_OVERLAY)
    shutil.copy(overlays / "production/secrets.env", overlays / "defaults/secrets.env")
    shutil.copytree(overlays / "production", overlays / "production-loadbalancer")
    kustomization = overlays / "production-loadbalancer/kustomization.yaml"
    text = kustomization.read_text()
    assert "../../components/gateway" in text
    kustomization.write_text(
        text.replace("../../components/gateway", "../../components/loadbalancer")
    )
    cert_manager = overlays / "production-cert-manager"
    shutil.copytree(overlays / "production", cert_manager)
    kustomization = yaml.safe_load((cert_manager / "kustomization.yaml").read_text())
    for key, values in manifests.readme_yaml_block("TLS with cert-manager").items():
        kustomization[key] = kustomization.get(key, []) + values
    (cert_manager / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    managed = overlays / "production-managed-db"
    shutil.copytree(overlays / "production", managed)
    text = (managed / "kustomization.yaml").read_text()
    (managed / "kustomization.yaml").write_text(switch_to_managed_db(text))
    return root


@pytest.fixture(scope="session")
def rendered(tree):
    """{name: [objects]} for base, staging, production and the variants made by `tree`."""
    paths = {"base": tree / "k8s/base"}
    for name in (*manifests.OVERLAYS, *VARIANTS):
        paths[name] = tree / "k8s/overlays" / name
    return {name: manifests.kustomize(path) for name, path in paths.items()}


@pytest.fixture(scope="session")
def secret_values(tree):
    """{overlay: {key: value}} of the generated secrets.env files."""
    values = {}
    for overlay in manifests.OVERLAYS:
        text = (tree / "k8s/overlays" / overlay / "secrets.env").read_text()
        pairs = [ln.split("=", 1) for ln in text.splitlines() if "=" in ln and ln[0] != "#"]
        values[overlay] = dict(pairs)
    return values
