"""The fake Kubernetes API server, by concern (`fake_apiserver.py` beside this package is
the entry point; README.md describes what it does and where it differs from a real server).

    common.py     Status errors, field errors, value formatting, log, timestamps
    resources.py  ResourceType and the built-in kinds
    store.py      objects, resourceVersions, event history, CRD registry, persistence,
                  create/replace/patch/delete
    admission.py  pruning, built-in registry strategies, schema validation (part of Store)
    schema.py     structural schemas: prune, default, validate; metadata checks
    cel.py        the CEL rules of this repository's CRDs, by their exact text
    patches.py    merge, strategic merge and JSON patch
    selectors.py  label and field selectors
    watch.py      watch streams: replay, fan-out from the history, bookmarks, timeouts
    discovery.py  /version, /api, /apis, OpenAPI v3
    rendering.py  versions, typed lists, Tables for kubectl get
    protobuf.py   protobuf request bodies of kubectl's create generators
    faults.py     fault injection, statistics, the /_fake/ endpoints
    handler.py    the HTTP server: connections, authentication, routing, lists
    tls.py        throwaway CA, server certificate, kubeconfig
"""
