"""Parse a compiled pipeline package as the KFP API server does: the pipeline document into
``PipelineSpec`` (its ``deploymentSpec``, a Struct there, into ``PipelineDeploymentConfig``), the
platform document into ``PlatformSpec``, and each Kubernetes executor config into
``KubernetesExecutorConfig`` (kfp-kubernetes), all with unknown fields rejected."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb2
from kfp.pipeline_spec import pipeline_spec_pb2


class SpecError(ValueError):
    """The package does not parse as the API server parses it; the message names the document."""


@dataclass
class ParsedPackage:
    spec: pipeline_spec_pb2.PipelineSpec
    deployment: pipeline_spec_pb2.PipelineDeploymentConfig
    platform: pipeline_spec_pb2.PlatformSpec | None
    kubernetes: dict[str, k8s_pb2.KubernetesExecutorConfig] = field(default_factory=dict)


def _parse(doc: dict, message, what: str):
    try:
        return json_format.ParseDict(doc, message, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        raise SpecError(f"{what}: {e}") from e


def parse_package(text: str | bytes) -> ParsedPackage:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise SpecError(f"not YAML: {e}") from e
    if not docs or len(docs) > 2 or not all(isinstance(d, dict) for d in docs):
        raise SpecError(f"expected a pipeline spec and an optional platform spec, got {len(docs)} document(s)")
    spec = _parse(docs[0], pipeline_spec_pb2.PipelineSpec(), "PipelineSpec")
    if not spec.pipeline_info.name or not spec.root.dag.tasks:
        raise SpecError("PipelineSpec: no pipelineInfo.name or an empty root DAG")
    deployment = _parse(docs[0].get("deploymentSpec", {}), pipeline_spec_pb2.PipelineDeploymentConfig(),
                        "PipelineSpec.deploymentSpec")
    if len(docs) == 1:
        return ParsedPackage(spec, deployment, None)
    platform = _parse(docs[1], pipeline_spec_pb2.PlatformSpec(), "PlatformSpec")
    kubernetes = {}
    executors = docs[1].get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    for name, conf in executors.items():
        if name not in deployment.executors:
            raise SpecError(f"PlatformSpec: Kubernetes config for executor {name!r}, which the pipeline lacks")
        kubernetes[name] = _parse(conf, k8s_pb2.KubernetesExecutorConfig(), f"KubernetesExecutorConfig {name}")
    return ParsedPackage(spec, deployment, platform, kubernetes)
