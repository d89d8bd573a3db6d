"""The recipes in k8s/README.md work: rendered and validated like the overlays themselves."""

import shutil

import kubernetes_validate
import yaml

from tests.k8s import manifests

yaml_block = manifests.readme_yaml_block


def test_managed_database_recipe(tree):
    """Production plus the README's managed-database patches: no StatefulSet, and `postgres`
    is an ExternalName Service, so DATABASE_URL stays the same; all valid."""
    overlays = tree / "k8s/overlays"
    folder = overlays / "production-managed-db"
    shutil.copytree(overlays / "production", folder)
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    kustomization["patches"] += yaml_block("Managed database")["patches"]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    docs = manifests.kustomize(folder)
    assert manifests.find(docs, "StatefulSet") == []
    assert manifests.one(docs, "Service", "postgres")["spec"]["type"] == "ExternalName"
    for doc in docs:
        if not manifests.from_crd(doc):
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_adapter_rule_in_readme_is_the_file():
    """The adapter rule shown in the README is the one in monitoring/prometheus-adapter.yaml."""
    shown = yaml_block("ws autoscaling metric")
    values = yaml.safe_load((manifests.ROOT / "k8s/monitoring/prometheus-adapter.yaml").read_text())
    assert shown == values["rules"]["custom"]
