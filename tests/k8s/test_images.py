"""Every image the overlays render names its registry, and the data tier's are pinned by digest.

An unqualified `chatstack/chat` would resolve to a public Docker Hub namespace nobody here
controls; the overlays name `registry.invalid` (RFC 2606: it never resolves) until the operator
sets the registry in its one place, k8s/components/registry. Redis and Postgres are pinned by
digest; each overlay's release/ component sets the chat's tag or digest.
"""

import re
from pathlib import Path

import pytest
import yaml

from tests.k8s import manifests
from tests.k8s.conftest import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
SHIPPED = (*manifests.OVERLAYS, *(v for v in VARIANTS if v != "defaults"))


def images(docs):
    """(where, image) of every container, init container and CloudNativePG Cluster."""
    found = []
    for doc in docs:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] in manifests.WORKLOADS:
            found += [(f"{where}/{c['name']}", c["image"]) for c in manifests.containers(doc)]
        elif doc["kind"] == "Cluster":
            found.append((where, doc["spec"]["imageName"]))
    return found


def registry_host(image):
    """The registry part of an image reference, or None (Docker's rule: the first path segment
    is a host only if it has a dot or a port, or is localhost)."""
    first, sep, _ = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else None


@pytest.mark.parametrize("overlay", SHIPPED)
def test_every_image_names_a_registry_host(rendered, overlay):
    found = images(rendered[overlay])
    assert len(found) >= 8, f"expected the overlay's workloads' images, found {found}"
    bare = [(where, image) for where, image in found if registry_host(image) is None]
    assert not bare, f"expected every image to name its registry host, found {bare}"


@pytest.mark.parametrize("overlay", SHIPPED)
def test_chat_images_use_the_placeholder_until_a_registry_is_set(rendered, overlay):
    chat = {image for _, image in images(rendered[overlay]) if "/chatstack/" in image}
    assert {i.rpartition(":")[0] for i in chat} == {
        "registry.invalid/chatstack/chat",
        "registry.invalid/chatstack/nginx",
    }, chat


@pytest.mark.parametrize("overlay", SHIPPED)
def test_redis_and_postgres_are_pinned_by_digest(rendered, overlay):
    data = [
        (where, image)
        for where, image in images(rendered[overlay])
        if re.search(r"/(redis|postgres):", image)
    ]
    assert data, "expected Redis and Postgres images"
    loose = [(where, image) for where, image in data if not DIGEST.search(image)]
    assert not loose, f"expected a digest on each, found {loose}"


def test_registry_is_set_in_one_place_listed_by_every_overlay():
    """components/registry renames both images; each overlay lists its release/ (tag or digest)
    and then the registry, in that order (components apply in order, before `images`)."""
    registry = yaml.safe_load((ROOT / "k8s/components/registry/kustomization.yaml").read_text())
    assert {i["name"] for i in registry["images"]} == {"chatstack/chat", "chatstack/nginx"}
    for overlay in manifests.OVERLAYS:
        text = (ROOT / "k8s/overlays" / overlay / "kustomization.yaml").read_text()
        kustomization = yaml.safe_load(text)
        assert "images" not in kustomization, f"{overlay}: set the tag in release/, not here"
        components = kustomization["components"]
        assert components[:2] == ["release", "../../components/registry"], components
        release = yaml.safe_load(
            (ROOT / "k8s/overlays" / overlay / "release/kustomization.yaml").read_text()
        )
        for entry in release["images"]:
            if "digest" in entry:
                assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry["digest"]), entry
            else:
                assert entry["newTag"] not in ("", "latest"), entry


def test_rollout_steps_start_with_the_registry():
    """k8s/README.md's deployment steps say to set the registry before anything else."""
    readme = (ROOT / "k8s/README.md").read_text()
    section = readme.split("## Deploy an overlay", 1)[1].split("\n## ", 1)[0]
    first = section.strip().split("\n\n", 1)[0]
    assert "components/registry" in first and "registry.invalid" in first, first
