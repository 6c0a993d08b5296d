"""moto server plus the EKS routes moto 5.2 lacks (add-ons, access entries), for glrunner's tests.

moto answers CreateAddon/CreateAccessEntry & co. with an HTML 404. This WSGI wrapper serves
those routes from memory, checks the cluster against moto's own EKS backend (so a deleted
cluster takes its add-ons and access entries with it), and passes every other request through
to moto unchanged. Test support only: never used outside the test suite.

Usage: python3 moto_shim.py HOST PORT
"""

import json
import re
import sys
import threading
import time
from urllib.parse import unquote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

ACCOUNT = "123456789012"
STATE = {}
LOCK = threading.Lock()
MOTO = DomainDispatcherApplication(create_backend_app)

ROUTE = re.compile(r"^/clusters/(?P<cluster>[^/]+)/(?P<kind>addons|access-entries)(?:/(?P<name>[^/]+))?(?P<policies>/access-policies)?$")


def region_of(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = re.search(r"Credential=[^/]+/\d+/([^/]+)/", auth)
    return match.group(1) if match else "us-east-1"


def moto_cluster_exists(region, cluster):
    from moto.eks.models import eks_backends

    return cluster in eks_backends[ACCOUNT][region].clusters


def reply(start_response, status, body, error_type=None):
    headers = [("Content-Type", "application/json")]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    payload = json.dumps(body).encode()
    start_response(f"{status} {'OK' if status < 400 else 'Error'}", headers + [("Content-Length", str(len(payload)))])
    return [payload]


def handle(environ, start_response, m):
    region = region_of(environ)
    method = environ["REQUEST_METHOD"]
    cluster = m.group("cluster")
    kind = m.group("kind")
    name = unquote(m.group("name")) if m.group("name") else None
    body = {}
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    key = (region, cluster)
    with LOCK:
        if not moto_cluster_exists(region, cluster):
            STATE.pop(key, None)
            return reply(start_response, 404, {"message": f"No cluster found for name: {cluster}."}, "ResourceNotFoundException")
        state = STATE.setdefault(key, {"addons": {}, "access-entries": {}})
        items = state[kind]
        now = time.time()
        if m.group("policies"):
            entry = items.get(name)
            if entry is None:
                return reply(start_response, 404, {"message": f"access entry {name} not found"}, "ResourceNotFoundException")
            if method == "POST":
                policy = {"policyArn": body.get("policyArn"), "accessScope": body.get("accessScope", {}), "associatedAt": now, "modifiedAt": now}
                entry["_policies"][policy["policyArn"]] = policy
                return reply(start_response, 200, {"clusterName": cluster, "principalArn": name, "associatedAccessPolicy": policy})
            return reply(start_response, 200, {"clusterName": cluster, "principalArn": name, "associatedAccessPolicies": list(entry["_policies"].values())})
        if name is None and method == "GET":
            listing = "addons" if kind == "addons" else "accessEntries"
            return reply(start_response, 200, {listing: sorted(items)})
        if name is None and method == "POST":
            if kind == "addons":
                name = body["addonName"]
                if name in items:
                    return reply(start_response, 409, {"message": "Addon already exists."}, "ResourceInUseException")
                items[name] = {
                    "addonName": name, "clusterName": cluster, "status": "ACTIVE", "addonVersion": "v1.11.4-eksbuild.1",
                    "health": {"issues": []}, "addonArn": f"arn:aws:eks:{region}:{ACCOUNT}:addon/{cluster}/{name}/0",
                    "createdAt": now, "modifiedAt": now, "tags": body.get("tags", {}),
                    "configurationValues": body.get("configurationValues", ""),
                }
                return reply(start_response, 200, {"addon": items[name]})
            name = body["principalArn"]
            if name in items:
                return reply(start_response, 409, {"message": "The specified access entry resource is already in use on this cluster."}, "ResourceInUseException")
            items[name] = {
                "clusterName": cluster, "principalArn": name, "kubernetesGroups": [], "type": body.get("type", "STANDARD"),
                "accessEntryArn": f"arn:aws:eks:{region}:{ACCOUNT}:access-entry/{cluster}/{len(items)}", "createdAt": now,
                "modifiedAt": now, "tags": body.get("tags", {}), "username": name, "_policies": {},
            }
            return reply(start_response, 200, {"accessEntry": public(items[name])})
        item = items.get(name)
        if item is None:
            return reply(start_response, 404, {"message": f"{kind} {name} not found in cluster {cluster}"}, "ResourceNotFoundException")
        field = "addon" if kind == "addons" else "accessEntry"
        if method == "DELETE":
            del items[name]
            if kind == "addons":
                item = dict(item, status="DELETING")
                return reply(start_response, 200, {field: item})
            return reply(start_response, 200, {})
        return reply(start_response, 200, {field: public(item)})


def public(item):
    return {k: v for k, v in item.items() if not k.startswith("_")}


def app(environ, start_response):
    # Match the raw path: principal ARNs arrive percent-encoded and contain '/' once decoded.
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    m = ROUTE.match(raw.split("?", 1)[0])
    if m:
        return handle(environ, start_response, m)
    return MOTO(environ, start_response)


if __name__ == "__main__":
    run_simple(sys.argv[1], int(sys.argv[2]), app, threaded=True)
