"""The recipes in k8s/README.md work: rendered and validated like the overlays themselves."""

import kubernetes_validate
import yaml

from tests.k8s import manifests

yaml_block = manifests.readme_yaml_block


def test_managed_database_recipe(rendered):
    """The README's managed-database switch is production's commented components line, and the
    overlay it makes (conftest's production-managed-db) has no Postgres pods and an ExternalName
    `postgres`, so DATABASE_URL stays the same; all valid."""
    shown = yaml_block("Managed database")
    assert shown == {"components": ["../../components/postgres-managed"]}
    production = (manifests.ROOT / "k8s/overlays/production/kustomization.yaml").read_text()
    assert f"  # - {shown['components'][0]}\n" in production
    docs = rendered["production-managed-db"]
    assert manifests.find(docs, "StatefulSet", "postgres") == []
    assert manifests.find(docs, "Cluster") == []
    assert manifests.one(docs, "Service", "postgres")["spec"]["type"] == "ExternalName"
    for doc in docs:
        if not manifests.from_crd(doc):
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_adapter_rule_in_readme_is_the_file():
    """The adapter rule shown in the README is the one in monitoring/prometheus-adapter.yaml."""
    shown = yaml_block("ws autoscaling metric")
    values = yaml.safe_load((manifests.ROOT / "k8s/monitoring/prometheus-adapter.yaml").read_text())
    assert shown == values["rules"]["custom"]
