#!/usr/bin/env python3
"""An OpenAPI 3.0 description of the Nova paths this API serves, built from Nova's own request schemas.

Usage: nova-openapi.py <nova sdist .tar.gz> <out.json>

Nova publishes no OpenAPI document; its API validates every request body and query against the JSON
schemas in nova/api/openstack/compute/schemas/*.py (with nova/api/validation/parameter_types.py). This
reads those files from the pinned nova sdist at run time (nothing of Nova is copied into the repository),
imports them with the few nova modules they need stubbed, and writes, for each (method, path) we serve,
Nova's request schema at our highest microversion (2.60) as the request body or query parameters. It is
for a "no 5xx" run of Schemathesis: responses are not described (they are checked against our own
document by the other run).
"""
import copy
import importlib.util
import json
import sys
import tarfile
import tempfile
import types
from pathlib import Path

MICROVERSION = (2, 60)
NEEDED = ("servers", "server_metadata", "flavors", "server_groups", "migrate_server", "evacuate", "admin_actions",
          "pause_server", "suspend_server", "services", "hypervisors", "migrations", "server_migrations",
          "instance_actions", "limits")


def load_schemas(sdist: str, root: Path) -> dict:
    wanted = ("nova/api/validation/parameter_types.py", "nova/api/validation/response_types.py")
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            rel = member.name.split("/", 1)[-1]
            if rel in wanted or (rel.startswith("nova/api/openstack/compute/schemas/") and rel.endswith(".py")):
                member.name = rel
                tar.extract(member, root, filter="data")

    def package(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
        return module

    for name in ("nova", "nova.api", "nova.api.validation", "nova.api.openstack", "nova.api.openstack.compute",
                 "nova.api.openstack.compute.schemas", "nova.objects"):
        package(name)
    i18n = types.ModuleType("nova.i18n")
    i18n._ = lambda s: s
    sys.modules["nova.i18n"] = i18n
    # The two constants the schemas read from nova.objects (nova/objects/tag.py, instance.py).
    tag = types.ModuleType("nova.objects.tag")
    tag.MAX_TAG_LENGTH = 60
    sys.modules["nova.objects.tag"] = tag
    sys.modules["nova.objects"].tag = tag
    instance = types.ModuleType("nova.objects.instance")
    instance.MAX_TAG_COUNT = 50
    sys.modules["nova.objects.instance"] = instance
    sys.modules["nova.objects"].instance = instance

    def load(name: str, path: Path) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)
        return module

    for name in ("parameter_types", "response_types"):
        load(f"nova.api.validation.{name}", root / f"nova/api/validation/{name}.py")
    modules = {}
    for stem in NEEDED:
        path = root / f"nova/api/openstack/compute/schemas/{stem}.py"
        modules[stem] = load(f"nova.api.openstack.compute.schemas.{stem}", path)
    return modules


def version_of(name: str, base: str):
    """The microversion a schema variable is for: create → (2, 0), create_v257 → (2, 57), migrate_live_v2_30 → (2, 30)."""
    suffix = name[len(base):].lstrip("_")
    if suffix == "":
        return (2, 0)
    if suffix.startswith("v2_"):
        return (2, int(suffix[3:]))
    if suffix.startswith("v2") and suffix[2:].isdigit():
        minor = suffix[2:]
        return (2, 0) if minor == "0" else (2, int(minor))
    return None


def pick(module, base: str):
    """Nova's variant of `base` at our microversion: the highest one not above it."""
    best = None
    for name in dir(module):
        if name != base and not name.startswith(base + "_"):
            continue
        v = version_of(name, base)
        if v is None or v > MICROVERSION:
            continue
        if best is None or v > best[0]:
            best = (v, name)
    if best is None:
        raise SystemExit(f"no schema {base} in {module.__name__}")
    return copy.deepcopy(getattr(module, best[1]))


def openapi_schema(schema):
    """JSON schema (draft 4, as Nova writes it) to OpenAPI 3.0: `type` lists become nullable / anyOf."""
    if isinstance(schema, list):
        return [openapi_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: openapi_schema(v) for k, v in schema.items()}
    t = out.get("type")
    if isinstance(t, list):
        types_ = [x for x in t if x != "null"]
        nullable = "null" in t
        out.pop("type")
        if len(types_) == 1:
            out["type"] = types_[0]
        elif types_:
            out["anyOf"] = [{"type": x} for x in types_]
        if nullable:
            out["nullable"] = True
    if out.get("type") == "null":
        out.pop("type")
        out["nullable"] = True
        out["enum"] = [None]
    return out


def query_parameters(schema):
    params = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = copy.deepcopy(prop)
        # Nova's multi_params: an array of values; one value a parameter here.
        if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
            prop = prop["items"]
        params.append({"name": name, "in": "query", "required": False, "schema": openapi_schema(prop)})
    return params


def main() -> None:
    sdist, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        m = load_schemas(sdist, Path(tmp))
    actions = [
        pick(m["servers"], "rebuild"), pick(m["servers"], "resize"), pick(m["servers"], "reboot"),
        pick(m["servers"], "stop_server"), pick(m["servers"], "start_server"),
        pick(m["servers"], "confirm_resize"), pick(m["servers"], "revert_resize"),
        pick(m["migrate_server"], "migrate"), pick(m["migrate_server"], "migrate_live"),
        pick(m["evacuate"], "evacuate"), pick(m["admin_actions"], "reset_state"),
        pick(m["pause_server"], "pause"), pick(m["pause_server"], "unpause"),
        pick(m["suspend_server"], "suspend"), pick(m["suspend_server"], "resume"),
    ]
    # (method, path, body schema or None, query schema or None)
    operations = [
        ("post", "/servers", pick(m["servers"], "create"), None),
        ("get", "/servers", None, pick(m["servers"], "index_query")),
        ("get", "/servers/detail", None, pick(m["servers"], "index_query")),
        ("get", "/servers/{server_id}", None, None),
        ("put", "/servers/{server_id}", pick(m["servers"], "update"), None),
        ("delete", "/servers/{server_id}", None, None),
        ("post", "/servers/{server_id}/action", {"oneOf": actions}, None),
        ("get", "/servers/{server_id}/metadata", None, None),
        ("post", "/servers/{server_id}/metadata", pick(m["server_metadata"], "create"), None),
        ("put", "/servers/{server_id}/metadata", pick(m["server_metadata"], "update_all"), None),
        ("get", "/servers/{server_id}/metadata/{key}", None, None),
        ("put", "/servers/{server_id}/metadata/{key}", pick(m["server_metadata"], "update"), None),
        ("delete", "/servers/{server_id}/metadata/{key}", None, None),
        ("get", "/flavors", None, pick(m["flavors"], "index_query")),
        ("get", "/flavors/detail", None, pick(m["flavors"], "index_query")),
        ("get", "/flavors/{flavor_id}", None, None),
        ("get", "/os-server-groups", None, pick(m["server_groups"], "index_query")),
        ("post", "/os-server-groups", pick(m["server_groups"], "create"), None),
        ("get", "/os-server-groups/{group_id}", None, None),
        ("delete", "/os-server-groups/{group_id}", None, None),
        ("get", "/os-services", None, pick(m["services"], "index_query")),
        ("put", "/os-services/{service_id}", pick(m["services"], "update"), None),
        ("get", "/os-hypervisors", None, pick(m["hypervisors"], "index_query")),
        ("get", "/os-hypervisors/detail", None, pick(m["hypervisors"], "index_query")),
        ("get", "/os-hypervisors/{hypervisor_id}", None, pick(m["hypervisors"], "show_query")),
        ("get", "/os-migrations", None, pick(m["migrations"], "index_query")),
        ("get", "/servers/{server_id}/migrations", None, pick(m["server_migrations"], "index_query")),
        ("get", "/servers/{server_id}/os-instance-actions", None, pick(m["instance_actions"], "index_query")),
        ("get", "/limits", None, pick(m["limits"], "index_query")),
    ]
    paths: dict = {}
    for method, path, body, query in operations:
        op = {
            "operationId": f"{method} {path}",
            "parameters": [
                {"name": p[1:-1], "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                for p in path.split("/") if p.startswith("{")
            ] + (query_parameters(query) if query else []),
            "responses": {"default": {"description": "any answer but a 5xx"}},
        }
        if body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": openapi_schema(body)}}}
        paths.setdefault(path, {})[method] = op
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "Nova compute API request schemas (nova sdist), the paths served here",
                 "version": f"{MICROVERSION[0]}.{MICROVERSION[1]}"},
        "servers": [{"url": "/compute/v2.1"}],
        "paths": paths,
    }
    Path(out).write_text(json.dumps(doc, indent=1, default=str))
    print(f"nova-openapi: {sum(len(v) for v in paths.values())} operations at {MICROVERSION[0]}.{MICROVERSION[1]}")


if __name__ == "__main__":
    main()
