"""Resource types: the built-in kinds the fake serves, plus whatever CRDs register
(see Store.register_crd)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: list = field(default_factory=list)
    categories: list = field(default_factory=list)
    status: bool = False          # has a /status subresource
    schema: dict | None = None    # structural openAPIV3Schema (custom resources only)
    columns: list | None = None   # printer columns after Name (jsonPath based); None: just Age
    fields: tuple | None = None   # allowed top-level fields of a built-in kind
    crd: str | None = None        # name of the defining CRD

    def __post_init__(self):
        self.singular = self.singular or self.kind.lower()
        if self.columns is None:
            self.columns = [AGE_COLUMN]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gr(self) -> tuple:
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:  # "backends.gateway.kgateway.dev" / "secrets"
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:  # "Backend.gateway.kgateway.dev" / "Secret"
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _col(name, path, type_="string", priority=0, fmt=""):
    return {"name": name, "type": type_, "jsonPath": path, "priority": priority, "format": fmt,
            "description": ""}


AGE_COLUMN = _col("Age", ".metadata.creationTimestamp", "date")


_WORKLOAD = ("spec", "status")


BUILTINS = [
    ResourceType("", "v1", "namespaces", "Namespace", False, short_names=["ns"], status=True,
                 columns=[_col("Status", ".status.phase"), AGE_COLUMN], fields=_WORKLOAD),
    ResourceType("", "v1", "nodes", "Node", False, short_names=["no"], status=True, fields=_WORKLOAD),
    ResourceType("", "v1", "pods", "Pod", short_names=["po"], categories=["all"], status=True,
                 fields=_WORKLOAD),
    ResourceType("", "v1", "services", "Service", short_names=["svc"], categories=["all"], status=True,
                 columns=[_col("Type", ".spec.type"), _col("Cluster-IP", ".spec.clusterIP"), AGE_COLUMN],
                 fields=_WORKLOAD),
    ResourceType("", "v1", "endpoints", "Endpoints", short_names=["ep"], singular="endpoints",
                 fields=("subsets",)),
    ResourceType("", "v1", "secrets", "Secret", columns=[_col("Type", ".type"), AGE_COLUMN],
                 fields=("data", "stringData", "type", "immutable")),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=["cm"],
                 fields=("data", "binaryData", "immutable")),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=["sa"],
                 fields=("secrets", "imagePullSecrets", "automountServiceAccountToken")),
    ResourceType("", "v1", "events", "Event", short_names=["ev"],
                 fields=("involvedObject", "reason", "message", "source", "firstTimestamp",
                         "lastTimestamp", "count", "type", "eventTime", "series", "action",
                         "related", "reportingComponent", "reportingInstance")),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=["pvc"],
                 status=True, fields=_WORKLOAD),
    ResourceType("apps", "v1", "deployments", "Deployment", short_names=["deploy"], categories=["all"],
                 status=True, columns=[_col("Replicas", ".spec.replicas", "integer"), AGE_COLUMN], fields=_WORKLOAD),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", short_names=["sts"], categories=["all"],
                 status=True, fields=_WORKLOAD),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", short_names=["ds"], categories=["all"],
                 status=True, fields=_WORKLOAD),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", short_names=["rs"], categories=["all"],
                 status=True, fields=_WORKLOAD),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False,
                 fields=("rules", "aggregationRule")),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False,
                 fields=("subjects", "roleRef")),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", fields=("rules",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding",
                 fields=("subjects", "roleRef")),
    ResourceType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=["hpa"],
                 categories=["all"], status=True, fields=_WORKLOAD),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=["pdb"],
                 status=True, fields=_WORKLOAD),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", fields=("spec",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice",
                 fields=("addressType", "endpoints", "ports")),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                 False, short_names=["crd", "crds"], status=True,
                 columns=[_col("Created At", ".metadata.creationTimestamp")], fields=_WORKLOAD),
]


BUILTIN_GROUP_ORDER = ["", "apps", "events.k8s.io", "autoscaling", "rbac.authorization.k8s.io", "policy",
                       "coordination.k8s.io", "discovery.k8s.io", "apiextensions.k8s.io"]


def version_priority(v: str) -> tuple:
    """Kubernetes version ordering: v1 > v1beta2 > v1beta1 > v1alpha1 > anything else."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (0, 0, 0, v)
    level = {None: 3, "beta": 2, "alpha": 1}[m.group(2)]
    return (level, int(m.group(1)), int(m.group(3) or 0), "")
