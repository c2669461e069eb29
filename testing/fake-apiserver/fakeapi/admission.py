"""Admission: what happens to an object between the request and the store. Unknown
fields are pruned (or rejected under fieldValidation=Strict), the registry strategies of
the built-ins that need one run (Namespace, Secret, Service, Deployment, CRD), custom
resources are defaulted and validated against their schema, and a few controllers act at
once after a commit (CRDs become served, LoadBalancer Services get an address)."""

from __future__ import annotations

import base64
import copy
import re

from .common import ApiError, FieldError, fmt_value, invalid, now_rfc3339
from .resources import ResourceType  # noqa: F401 (annotations)
from .schema import apply_defaults, prune, validate, validate_metadata


class AdmissionMixin:
    """Part of Store (store.py): runs under its lock and uses its state."""

    def _namespace_exists(self, ns: str) -> bool:
        return ("", ns) in self.objects.get(("", "namespaces"), {})

    def _admit(self, rt: ResourceType, obj: dict, old: dict | None, fv: str, warnings: list) -> None:
        name = obj["metadata"].get("name", "")
        unknown: list = []
        if rt.schema is not None:
            prune(obj, rt.schema, "", unknown, root=True)
        elif rt.fields is not None:
            for k in list(obj):
                if k not in rt.fields and k not in ("apiVersion", "kind", "metadata"):
                    unknown.append(k)
                    del obj[k]
        if unknown:
            if fv == "Strict":
                joined = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise ApiError(400, f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                    f"strict decoding error: {joined}")
            if fv == "Warn":
                warnings.extend(f'unknown field "{u}"' for u in unknown)
        errs = validate_metadata(rt, obj["metadata"])
        errs += self._prepare(rt, obj, old)
        if rt.schema is not None:
            apply_defaults(obj, rt.schema)
            validate(obj, rt.schema, "", errs, root=True)
        if errs:
            raise invalid(rt, name, errs)

    def _prepare(self, rt: ResourceType, obj: dict, old: dict | None) -> list:
        """What the real registry strategies do for the built-ins that need it."""
        errs: list = []
        if rt.gr == ("", "namespaces"):
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif rt.gr == ("", "secrets"):
            obj.setdefault("type", "Opaque")
            data = obj.get("data") or {}
            for k, v in (obj.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            for k, v in data.items():
                if not re.fullmatch(r"[-._a-zA-Z0-9]+", k):
                    errs.append(FieldError(f"data[{k}]", "FieldValueInvalid",
                                           f"Invalid value: {fmt_value(k)}: a valid config key must consist of "
                                           "alphanumeric characters, '-', '_' or '.'"))
                try:
                    base64.b64decode(v, validate=True)
                except (ValueError, TypeError):
                    raise ApiError(400, f"Secret in version \"v1\" cannot be handled as a Secret: illegal "
                                        f"base64 data in data[{k}]")
            if data:
                obj["data"] = data
            if old is not None and old.get("type") != obj.get("type"):
                errs.append(FieldError("type", "FieldValueInvalid",
                                       f"Invalid value: {fmt_value(obj.get('type'))}: field is immutable"))
        elif rt.gr == ("", "services"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            old_spec = (old or {}).get("spec") or {}
            if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
                if old_spec.get("clusterIP"):
                    spec["clusterIP"] = old_spec["clusterIP"]
                else:
                    spec["clusterIP"] = f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
                    self._next_ip += 1
                spec["clusterIPs"] = [spec["clusterIP"]]
            if spec["type"] in ("NodePort", "LoadBalancer"):
                old_ports = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []}
                for p in spec.get("ports") or []:
                    if p.get("nodePort"):
                        continue
                    if old_ports.get(p.get("port")):
                        p["nodePort"] = old_ports[p.get("port")]
                    else:
                        p["nodePort"] = self._next_node_port
                        self._next_node_port += 1
        elif rt.gr == ("apps", "deployments"):
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        elif rt.gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
            errs += self._validate_crd(obj, old)
        return errs

    def _validate_crd(self, crd: dict, old: dict | None) -> list:
        errs = []
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for f in ("group", "scope"):
            if not spec.get(f):
                errs.append(FieldError(f"spec.{f}", "FieldValueRequired", "Required value"))
        for f in ("plural", "kind"):
            if not names.get(f):
                errs.append(FieldError(f"spec.names.{f}", "FieldValueRequired", "Required value"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errs.append(FieldError("spec.scope", "FieldValueNotSupported",
                                   f'Unsupported value: {fmt_value(spec.get("scope"))}: supported values: '
                                   f'"Cluster", "Namespaced"'))
        if names.get("plural") and spec.get("group") and \
                crd["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
            errs.append(FieldError("metadata.name", "FieldValueInvalid",
                                   f'Invalid value: {fmt_value(crd["metadata"]["name"])}: must be '
                                   f'spec.names.plural+"."+spec.group'))
        versions = spec.get("versions") or []
        if not versions:
            errs.append(FieldError("spec.versions", "FieldValueInvalid", "Invalid value: null: must have exactly "
                                                                         "one version marked as storage version"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            errs.append(FieldError("spec.versions", "FieldValueInvalid",
                                   "Invalid value: []: must have exactly one version marked as storage version"))
        for i, v in enumerate(versions):
            if not ((v.get("schema") or {}).get("openAPIV3Schema")):
                errs.append(FieldError(f"spec.versions[{i}].schema.openAPIV3Schema", "FieldValueRequired",
                                       "Required value: schemas are required"))
        if not errs:
            old_status = (old or {}).get("status") or {}
            crd["status"] = {
                "acceptedNames": {"plural": names["plural"], "kind": names["kind"],
                                  "singular": names.get("singular", names["kind"].lower()),
                                  "listKind": names.get("listKind", names["kind"] + "List"),
                                  **({"shortNames": names["shortNames"]} if names.get("shortNames") else {}),
                                  **({"categories": names["categories"]} if names.get("categories") else {})},
                "conditions": old_status.get("conditions") or [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now_rfc3339()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now_rfc3339()},
                ],
                "storedVersions": [v["name"] for v in versions if v.get("storage")],
            }
        return errs

    def _after_commit(self, rt: ResourceType, obj: dict) -> None:
        if rt.gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.register_crd(obj)
        # Stand-in for a cloud load-balancer controller: give LoadBalancer Services an address.
        if rt.gr == ("", "services") and self.lb_ip and obj["spec"].get("type") == "LoadBalancer" and \
                not ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            new = copy.deepcopy(obj)
            new["status"] = {"loadBalancer": {"ingress": [{"ip": self.lb_ip, "ipMode": "VIP"}]}}
            self._commit(rt, new, obj)
