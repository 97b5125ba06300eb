"""docker/kubernetes: the manifests parse; Kubernetes objects and every Ray pod template pass the Kubernetes schema
(kubernetes-validate, strict); the KubeRay resources use only KubeRay's fields; the cluster has a GPU worker group,
shared results storage on every pod, the tracking URI on every container, the pinned Ray and the project's image;
and the RayJob runs a study command the CLI accepts, with settings that pass the multi-node rules."""

from __future__ import annotations

import shlex
from urllib.parse import urlparse

import pytest

import search_spaces
from study.launch.cluster import is_loopback
from study.launch.storage import check_cluster_storage
from tests.docker.conftest import DOCKER, cli_options, dry_run, load_all, pins, project

KUBE = DOCKER / "kubernetes"
RAYCLUSTER_FIELDS = {"rayVersion", "headGroupSpec", "workerGroupSpecs", "enableInTreeAutoscaling",
                     "autoscalerOptions", "headServiceAnnotations", "suspend", "managedBy", "authOptions",
                     "gcsFaultToleranceOptions", "upgradeStrategy"}
HEAD_FIELDS = {"serviceType", "headService", "enableIngress", "rayStartParams", "template", "resources", "labels",
               "headNodeIP"}
WORKER_FIELDS = {"groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds", "suspend",
                 "numOfHosts", "rayStartParams", "template", "scaleStrategy", "resources", "labels"}
RAYJOB_FIELDS = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
                 "clusterSelector", "submitterConfig", "managedBy", "deletionPolicy", "deletionStrategy", "entrypoint",
                 "runtimeEnvYAML", "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus",
                 "entrypointNumGpus", "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend"}
"""The spec fields of KubeRay's ray.io/v1 API (v1.5/v1.6 reference), to catch misspelt or misplaced keys."""


@pytest.fixture(scope="module")
def objects():
    found = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in load_all(path):
            found[(doc["kind"], doc["metadata"].get("name") or doc["metadata"].get("generateName"))] = doc
    return found


@pytest.fixture(scope="module")
def raycluster(objects):
    (cluster,) = [doc for (kind, _), doc in objects.items() if kind == "RayCluster"]
    return cluster


@pytest.fixture(scope="module")
def rayjob(objects):
    (job,) = [doc for (kind, _), doc in objects.items() if kind == "RayJob"]
    return job


@pytest.fixture(scope="module")
def config(objects):
    return objects[("ConfigMap", "margin-study")]["data"]


def groups(cluster: dict) -> list[dict]:
    """The head group, then the worker groups."""
    return [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]


def validate(resource: dict) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (part of the dev extra)")
    kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)


def test_the_manifests_hold_what_a_cluster_needs(objects):
    assert set(objects) == {("ConfigMap", "margin-study"), ("PersistentVolumeClaim", "margin-study-results"),
                            ("PersistentVolumeClaim", "margin-study-data"), ("RayCluster", "margin-study"),
                            ("RayJob", "margin-sweep-")}


def test_kubernetes_objects_and_pod_templates_pass_the_schema(objects, raycluster):
    for (kind, _), doc in objects.items():
        if kind in ("ConfigMap", "PersistentVolumeClaim"):
            validate(doc)
    for group in groups(raycluster):
        validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": group["template"]})


def test_the_schema_check_catches_a_misspelt_field(raycluster):
    template = {**raycluster["spec"]["headGroupSpec"]["template"]}
    template["spec"] = {**template["spec"], "volumeMount": []}
    with pytest.raises(Exception, match="volumeMount"):
        validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template})


def test_kuberay_resources_use_only_kuberay_fields(raycluster, rayjob):
    assert raycluster["apiVersion"] == rayjob["apiVersion"] == "ray.io/v1"
    spec = raycluster["spec"]
    assert set(spec) <= RAYCLUSTER_FIELDS and {"rayVersion", "headGroupSpec", "workerGroupSpecs"} <= set(spec)
    assert set(spec["headGroupSpec"]) <= HEAD_FIELDS
    for group in spec["workerGroupSpecs"]:
        assert set(group) <= WORKER_FIELDS and {"groupName", "rayStartParams", "template"} <= set(group)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert spec["authOptions"] == {"mode": "token"}
    assert set(rayjob["spec"]) <= RAYJOB_FIELDS


def test_ray_version_and_image_match_the_project(raycluster):
    assert raycluster["spec"]["rayVersion"] == pins()["ray"], "rayVersion must be the image's (docker/constraints.txt)"
    version = project()["version"]
    images = {c["image"] for g in groups(raycluster) for c in g["template"]["spec"]["containers"]}
    assert images == {f"margin-study:{version}-gpu"}


def test_the_gpu_worker_group_gets_whole_gpus(raycluster):
    (gpu,) = [g for g in raycluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"]
    (container,) = gpu["template"]["spec"]["containers"]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert int(limits["nvidia.com/gpu"]) >= 1 and requests["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["template"]["spec"]["tolerations"]
    head = raycluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0", "trials run on the GPU workers, not the head"


def test_every_pod_mounts_shared_results_and_reads_the_settings(objects, raycluster, config):
    results = objects[("PersistentVolumeClaim", "margin-study-results")]
    assert results["spec"]["accessModes"] == ["ReadWriteMany"], "every node writes results: ReadWriteMany"
    for group in groups(raycluster):
        spec = group["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        for container in spec["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert claims[mounts[config["MARGIN_STUDY_STORAGE"]]] == "margin-study-results"
            assert {"configMapRef": {"name": "margin-study"}} in container["envFrom"], \
                f"{container['name']} does not get the tracking URI and storage settings"


def test_the_settings_pass_the_multi_node_rules(config):
    uri = urlparse(config["MLFLOW_TRACKING_URI"])
    assert uri.scheme in ("http", "https") and not is_loopback(uri.hostname), "a server every pod reaches"
    assert config["MARGIN_STUDY_SHARED_PATHS"] == config["MARGIN_STUDY_STORAGE"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MARGIN_STUDY_SHARED_PATHS", config["MARGIN_STUDY_SHARED_PATHS"])
        check_cluster_storage(config["MARGIN_STUDY_STORAGE"], config["MLFLOW_TRACKING_URI"],
                              ["10.8.0.4", "10.8.1.7", "10.8.2.9"], assume_shared=False)


def test_ray_start_params_are_ray_start_options(raycluster):
    options = cli_options("ray", "start")
    for group in groups(raycluster):
        assert {f"--{key}" for key in group["rayStartParams"]} <= options


def test_the_rayjob_runs_a_study_on_this_cluster(rayjob, raycluster, config, tmp_path):
    assert rayjob["spec"]["clusterSelector"] == {"ray.io/cluster": raycluster["metadata"]["name"]}
    command = shlex.split(rayjob["spec"]["entrypoint"])
    assert command[:3] == ["python", "-m", "study.run"] and command[3] in search_spaces.names()
    output = dry_run(command[3:], dict(config), tmp_path)
    assert f"results     {config['MARGIN_STUDY_STORAGE']}/{command[3]}-" in output
    assert f"mlflow      {config['MLFLOW_TRACKING_URI']}" in output
