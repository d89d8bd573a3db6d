"""The translation rules the smoke boot relies on, shown without Docker: the kubelet's `$(VAR)`
expansion and environment, the runAsNonRoot check, image stand-ins, and the ConfigMap volume
layout with fsGroup ownership."""

import base64
import os
import stat

import pytest

from tests.k8s import manifests
from tests.kube import cluster, translate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Cases of Kubernetes' own expansion tests (third_party/forked/golang/expansion).
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)$(VAR_B)", "AB"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$(VAR_A", "$(VAR_A"),
        ("$(UNSET)", "$(UNSET)"),
        ("$VAR_A", "$VAR_A"),
        ("$$", "$"),
        ("$$$$", "$$"),
        ("$", "$"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("$(VAR_EMPTY)x", "x"),
    ],
)
def test_expansion_is_the_kubelets(text, expected):
    """`$(VAR)` expands, `$$` escapes, an unknown or incomplete reference stays as written."""
    values = {"VAR_A": "A", "VAR_B": "B", "VAR_EMPTY": ""}
    assert translate.expand(text, values.get) == expected


def _pod(spec, name="p"):
    workload = translate.Workload("Deployment", name, {"spec": spec}, 1)
    return translate.pods(workload, "ns")[0]


def _secret(name, **values):
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return {"kind": "Secret", "metadata": {"name": name}, "data": data}


def test_environment_is_built_in_the_kubelets_order():
    """envFrom first, then env in order, each value expanded against what is defined so far:
    a reference to a later variable stays unresolved and is reported; invalid keys skipped."""
    docs = [
        {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"A": "1", "bad key": "x"}},
        _secret("sec", PASSWORD="s3cret"),
    ]
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}}],
        "env": [
            {"name": "URL", "value": "db://u:$(PASSWORD)@h/$(LATER)"},
            {"name": "LATER", "value": "x"},
            {"name": "LITERAL", "value": "$$(A)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "args": ["--a=$(A)", "$(URL)"],
    }
    missing = []
    env = translate.environment(
        docs, _pod({"containers": [container]}), container, "10.0.0.1", missing
    )
    assert env == {
        "A": "1",
        "PASSWORD": "s3cret",
        "URL": "db://u:s3cret@h/$(LATER)",
        "LATER": "x",
        "LITERAL": "$(A)",
        "POD": "ns",
    }
    assert translate.command_line(container, env, missing) == (
        None,
        ["--a=1", "db://u:s3cret@h/$(LATER)"],
    )
    assert "$(LATER) in env URL of c" in missing
    assert any("bad key" in m for m in missing)


def test_missing_secret_key_is_the_kubelets_error():
    """A secretKeyRef to a key the Secret lacks stops the container, named (not an empty value)."""
    container = {
        "name": "c",
        "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "NOPE"}}}],
    }
    with pytest.raises(translate.Untranslatable, match=r"has no key 'NOPE'.*CreateContainerConfig"):
        translate.environment(
            [_secret("sec")], _pod({"containers": [container]}), container, "", []
        )


def test_run_as_non_root_is_checked_as_the_kubelet_does():
    """Without runAsUser the image's user decides: root, or a name that cannot be verified,
    is refused."""
    container = {"name": "c", "securityContext": {"runAsNonRoot": True}}
    pod = _pod({"containers": [container]})
    with pytest.raises(translate.Untranslatable, match="image will run as root"):
        translate.identity(pod, container, "")
    with pytest.raises(translate.Untranslatable, match="not numeric"):
        translate.identity(pod, container, "nginx")
    assert translate.identity(pod, container, "10001:10001").uid is None


def test_images_map_to_local_stand_ins_by_repository():
    standins = {"REDIS_IMAGE": "chatstack/redis:7.0-bookworm"}
    assert translate.local_image("redis:7.4-alpine", standins)[0] == standins["REDIS_IMAGE"]
    assert (
        translate.local_image("docker.io/library/redis:7", standins)[0]
        == "chatstack/redis:7.0-bookworm"
    )
    assert translate.local_image("chatstack/chat:1.0.0", standins)[0] == "chatstack/chat:latest"
    placeholder = "registry.invalid/chatstack/nginx:1.0.0"  # k8s/components/registry
    assert translate.local_image(placeholder, standins)[0] == "chatstack/nginx:latest"
    pinned = "docker.io/library/redis:7.4-alpine@sha256:" + "0" * 64
    assert translate.local_image(pinned, standins)[0] == standins["REDIS_IMAGE"]
    with pytest.raises(translate.Untranslatable, match=r"no local stand-in for image quay\.io/x"):
        translate.local_image("quay.io/x:1", standins)


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership changes need root, as the kubelet's")
def test_configmap_volume_layout_and_fs_group(tmp_path):
    """The kubelet's atomic-writer layout (..data), the mode as written, group fsGroup with
    read access added, and setgid directories."""
    files = [translate.VolumeFile("a.conf", b"x", 0o400), translate.VolumeFile("d/b", b"y", 0o600)]
    volume = tmp_path / "v"
    cluster.write_atomic_volume(volume, files)
    cluster.set_ownership(volume, 101, read_only=True)
    assert os.readlink(volume / "a.conf") == "..data/a.conf"
    assert (volume / "..data").is_symlink()
    real = volume / "..data" / "a.conf"
    info = real.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 101, 0o440)
    assert stat.S_IMODE((volume / "d" / "b").stat().st_mode) == 0o640  # 0600 + group read
    assert (volume / "..data" / "d").stat().st_mode & stat.S_ISGID


def test_every_rendered_pod_is_translatable(tmp_path):
    """Every pod of both overlays passes the field check (no field the harness would skip),
    and nginx's upstreams expand to the FQDNs its resolver needs."""
    tree = manifests.make_tree(tmp_path)
    for overlay in manifests.OVERLAYS:
        docs = manifests.kustomize(tree / "k8s/overlays" / overlay)
        namespace = next(d for d in docs if d["kind"] == "Namespace")["metadata"]["name"]
        for workload in translate.workloads(docs, []):
            for pod in translate.pods(workload, namespace):
                translate.check_fields(pod)
                for container in pod.containers():
                    missing = []
                    env = translate.environment(docs, pod, container, "10.0.0.9", missing)
                    translate.command_line(container, env, missing)
                    assert not missing, f"{overlay} {pod.name}/{container['name']}: {missing}"
                    if container["name"] == "nginx":
                        assert env["WEB_UPSTREAM"] == f"web.{namespace}.svc.cluster.local:8000"
