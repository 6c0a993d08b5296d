"""EKS Pod Identity associations, which moto 5.2 does not serve (its EKS backend has no
`pod-identity-associations` routes): CreatePodIdentityAssociation, ListPodIdentityAssociations,
DescribePodIdentityAssociation and DeletePodIdentityAssociation, from memory, for the doctor's
guard (EKS Pod Identity does not work on Fargate). Test support only; loaded by moto_shim.py
(every scripts/shim_*.py is, through its `register(shim)`).

Requests are validated against EKS's own service model as botocore ships it (the one installed
with moto, loaded at start, never copied here): the operation's HTTP method and URI, its required
members, member types, enums, patterns, lengths and ranges (`validate` below). What the model
cannot say is modelled from the EKS API reference and said where it is:

- a call under a cluster moto does not have answers ResourceNotFoundException
  ("No cluster found for name: X.");
- a second association for the same namespace and ServiceAccount answers
  ResourceInUseException ("Association already exists: ..."; CreatePodIdentityAssociation,
  Errors: "The specified resource is in use");
- `roleArn` must be an IAM role ARN (CreatePodIdentityAssociation: "The Amazon Resource Name
  (ARN) of the IAM role"), InvalidParameterException otherwise;
- an unknown association ID answers ResourceNotFoundException;
- List filters by the `namespace` and `serviceAccount` query parameters and pages with
  `maxResults` (1-100, the model's range) and `nextToken`; its items are summaries
  (clusterName, namespace, serviceAccount, associationArn, associationId, ownerArn: the model's
  PodIdentityAssociationSummary).

A deleted cluster takes its associations with it. `POST /moto-api/reset` clears them.
"""

import json
import random
import re
import string
import time
from urllib.parse import parse_qs, unquote

import botocore.session

SHIM = None
STATE = {}  # (region, cluster) -> {association id: association}
PATH = re.compile(r"^/clusters/(?P<cluster>[^/]+)/pod-identity-associations(?:/(?P<id>[^/]+))?$")
MODEL = botocore.session.get_session().get_service_model("eks")
OPERATIONS = {
    ("POST", False): "CreatePodIdentityAssociation",
    ("GET", False): "ListPodIdentityAssociations",
    ("GET", True): "DescribePodIdentityAssociation",
    ("DELETE", True): "DeletePodIdentityAssociation",
}
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
SUMMARY = list(MODEL.shape_for("PodIdentityAssociationSummary").members)


def check_uri(operation, path_is_item):
    """The route agrees with the model's method and request URI (a drift fails at start)."""
    http = MODEL.operation_model(operation).http
    expected = "/clusters/{name}/pod-identity-associations" + ("/{associationId}" if path_is_item else "")
    assert http["requestUri"] == expected, (operation, http)


for (method, item), operation in OPERATIONS.items():
    check_uri(operation, item)
    assert MODEL.operation_model(operation).http["method"] == method, operation


def invalid(message):
    return SHIM.reply_json(400, {"message": message}, "InvalidParameterException")


def validate(operation, params):
    """None, or the error answer for what EKS's model refuses in `params` (member name -> value)."""
    shape = MODEL.operation_model(operation).input_shape
    for name in shape.required_members:
        if params.get(name) in (None, ""):
            return invalid(f"{name} is required")
    for name, value in params.items():
        member = shape.members.get(name)
        if member is None:
            return invalid(f"unknown member {name}")
        problem = check_value(member, value)
        if problem:
            return invalid(f"{name}: {problem}")
    return None


def check_value(shape, value):
    kind = shape.type_name
    meta = shape.metadata
    if kind == "string":
        if not isinstance(value, str):
            return "must be a string"
        if "enum" in meta and value not in meta["enum"]:
            return f"must be one of {meta['enum']}"
        if "pattern" in meta and not re.search(meta["pattern"], value):
            return f"must match {meta['pattern']}"
        if len(value) < meta.get("min", 0) or len(value) > meta.get("max", 1 << 30):
            return "has a length out of range"
    elif kind == "integer":
        try:
            number = int(value)
        except (TypeError, ValueError):
            return "must be an integer"
        if number < meta.get("min", -(1 << 62)) or number > meta.get("max", 1 << 62):
            return f"must be within {meta.get('min')}..{meta.get('max')}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return "must be a boolean"
    elif kind == "map":
        if not isinstance(value, dict):
            return "must be a map"
        if len(value) < meta.get("min", 0) or len(value) > meta.get("max", 1 << 30):
            return "has a size out of range"
        for k, v in value.items():
            problem = check_value(shape.key, k) or check_value(shape.value, v)
            if problem:
                return problem
    return None


def new_id():
    return "a-" + "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(17))


def pod_identity(req):
    m = PATH.match(req.path)
    if not m:
        return None
    cluster = unquote(m.group("cluster"))
    association_id = unquote(m.group("id")) if m.group("id") else None
    operation = OPERATIONS.get((req.method, association_id is not None))
    if operation is None:
        return None
    params = {"clusterName": cluster}
    if association_id is not None:
        params["associationId"] = association_id
    query = {k: v[0] for k, v in parse_qs(req.query_string).items()}
    if operation == "ListPodIdentityAssociations":
        params.update(query)
    elif operation == "CreatePodIdentityAssociation":
        try:
            params.update(req.json())
        except ValueError:
            return invalid("the body is not JSON")
    refused = validate(operation, params)
    if refused:
        return refused
    region = req.region
    key = (region, cluster)
    with SHIM.LOCK:
        if cluster not in SHIM.eks_backend(region).clusters:
            STATE.pop(key, None)
            return SHIM.reply_json(404, {"message": f"No cluster found for name: {cluster}."}, "ResourceNotFoundException")
        items = STATE.setdefault(key, {})
        if operation == "CreatePodIdentityAssociation":
            if not ROLE_ARN.match(params["roleArn"]):
                return invalid(f"roleArn {params['roleArn']} is not an IAM role ARN")
            for existing in items.values():
                if (existing["namespace"], existing["serviceAccount"]) == (params["namespace"], params["serviceAccount"]):
                    return SHIM.reply_json(
                        409,
                        {"message": f"Association already exists: {existing['associationArn']}"},
                        "ResourceInUseException",
                    )
            new = new_id()
            now = time.time()
            items[new] = {
                "clusterName": cluster,
                "namespace": params["namespace"],
                "serviceAccount": params["serviceAccount"],
                "roleArn": params["roleArn"],
                "associationArn": f"arn:aws:eks:{region}:{SHIM.ACCOUNT}:podidentityassociation/{cluster}/{new}",
                "associationId": new,
                "tags": params.get("tags", {}),
                "createdAt": now,
                "modifiedAt": now,
                "disableSessionTags": params.get("disableSessionTags", False),
            }
            return SHIM.reply_json(200, {"association": items[new]})
        if operation == "ListPodIdentityAssociations":
            chosen = [
                a for a in sorted(items.values(), key=lambda a: a["createdAt"])
                if query.get("namespace") in (None, a["namespace"])
                and query.get("serviceAccount") in (None, a["serviceAccount"])
            ]
            size = int(query.get("maxResults", 100))
            start = int(query.get("nextToken", "0"))
            page = {"associations": [{k: a[k] for k in SUMMARY if k in a} for a in chosen[start:start + size]]}
            if start + size < len(chosen):
                page["nextToken"] = str(start + size)
            return SHIM.reply_json(200, page)
        found = items.get(association_id)
        if found is None:
            return SHIM.reply_json(
                404, {"message": f"Association {association_id} not found in cluster {cluster}."}, "ResourceNotFoundException"
            )
        if operation == "DeletePodIdentityAssociation":
            del items[association_id]
        return SHIM.reply_json(200, {"association": found})


def reset(req):
    if req.method == "POST" and req.path == "/moto-api/reset":
        STATE.clear()
    return None


def register(shim):
    global SHIM
    SHIM = shim
    shim.route(reset)
    shim.route(pod_identity)
