"""ECR pull-through cache rules, which moto 5.2 lacks, and strict S3 gateway endpoints. Test
support only; loaded by moto_shim.py (every scripts/shim_*.py is, through its `register(shim)`).

ECR (awsJson1_1, X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>):
CreatePullThroughCacheRule, DescribePullThroughCacheRules and DeletePullThroughCacheRule are
served from memory. Every request is validated against botocore's own ECR service model (the one
the AWS CLI and SDKs are generated from): required members, enums, string patterns and lengths,
list lengths; a violation answers InvalidParameterException as ECR does. On top of the model:

- one rule per prefix: PullThroughCacheRuleAlreadyExistsException; unknown prefixes in
  Describe/Delete: PullThroughCacheRuleNotFoundException (ECR API Reference).
- `upstreamRegistryUrl` must be the registry's own (ECR User Guide, "Creating a pull through
  cache rule": public.ecr.aws, registry-1.docker.io, quay.io, registry.k8s.io, ghcr.io,
  registry.gitlab.com ...), and docker-hub, github-container-registry, azure-container-registry
  and gitlab-container-registry need a `credentialArn`.
- the credential must be an existing Secrets Manager secret of this account and Region (moto's
  Secrets Manager) whose value is `{"username": ..., "accessToken": ...}` (same page: "The secret
  must contain a username and accessToken"): else SecretNotFoundException or
  UnableToDecryptSecretValueException.
- deleting a rule keeps the repositories it created (ECR User Guide, "Deleting a pull through cache
  rule").

`POST /glrunner-shim/ecr-pull` with {"region": ..., "repository": "<prefix>/<path>"} plays a first
pull through the cache: when a rule's prefix covers the repository, moto's ECR gets the repository
(ECR creates it on the first pull, ECR User Guide, "Pulling an image with a pull through cache
rule"); answers {"created": bool, "covered": bool}.

EC2, strict mode (key `gateway_endpoints`, on by default): CreateVpcEndpoint of type Gateway
refuses route tables that do not exist or belong to another VPC
(`InvalidRouteTableId.NotFound`), a service EC2 does not offer in the Region
(`InvalidServiceName`), and a second gateway endpoint to the same service on a route table
(`RouteAlreadyExists`: a route table has one route per prefix list; moto accepts all three).

`POST /moto-api/reset` clears the rules.
"""

import json
import re
import threading
import time

SHIM = None
LOCK = threading.Lock()
RULES = {}  # (region, prefix) -> rule
TARGET = "AmazonEC2ContainerRegistry_V20150921."
# ECR User Guide, "Creating a pull through cache rule": upstream registry URLs.
UPSTREAM_URLS = {
    "ecr-public": "public.ecr.aws",
    "docker-hub": "registry-1.docker.io",
    "quay": "quay.io",
    "k8s": "registry.k8s.io",
    "github-container-registry": "ghcr.io",
    "gitlab-container-registry": "registry.gitlab.com",
    "chainguard": "cgr.dev",
}
NEEDS_CREDENTIAL = {"docker-hub", "github-container-registry", "azure-container-registry", "gitlab-container-registry"}
_MODEL = None


def model():
    global _MODEL
    if _MODEL is None:
        import botocore.session

        _MODEL = botocore.session.get_session().get_service_model("ecr")
    return _MODEL


def error(code, message, status=400):
    return SHIM.reply_json(status, {"__type": code, "message": message}, code)


def violations(shape, value, path):
    """What the model refuses in `value` (a parsed JSON member of `shape`), as messages."""
    out = []
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path} must be an object"]
        for name in shape.required_members:
            if name not in value:
                out.append(f"Value null at '{name}' failed to satisfy constraint: Member must not be null")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None:
                continue  # the service ignores unknown members
            out.extend(violations(member, member_value, name))
    elif kind == "list":
        if not isinstance(value, list):
            return [f"{path} must be a list"]
        if "min" in meta and len(value) < meta["min"]:
            out.append(f"Value at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}")
        for item in value:
            out.extend(violations(shape.member, item, path))
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{path} must be a string"]
        if shape.enum and value not in shape.enum:
            out.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: {shape.enum}")
        if "min" in meta and len(value) < meta["min"]:
            out.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}")
        if "pattern" in meta and not re.search(meta["pattern"], value):
            out.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {meta['pattern']}")
    elif kind == "integer":
        if not isinstance(value, int):
            return [f"{path} must be an integer"]
        if "min" in meta and value < meta["min"]:
            out.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            out.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be less than or equal to {meta['max']}")
    return out


def validate(operation, body):
    problems = violations(model().operation_model(operation).input_shape, body, "")
    if problems:
        return error("InvalidParameterException", f"{len(problems)} validation error(s) detected: " + "; ".join(problems))
    return None


def secret_value(region, arn):
    """The secret's string, or raises KeyError when moto's Secrets Manager has no such secret."""
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[SHIM.ACCOUNT][region]
    try:
        return backend.get_secret_value(arn, None, "AWSCURRENT")["SecretString"]
    except Exception as e:  # moto raises its own SecretNotFoundException / ResourceNotFound
        raise KeyError(arn) from e


def public_rule(rule):
    return {k: v for k, v in rule.items() if v is not None}


def ecr(req):
    op = req.environ.get("HTTP_X_AMZ_TARGET", "")
    if not op.startswith(TARGET):
        return None
    op = op[len(TARGET):]
    if op not in ("CreatePullThroughCacheRule", "DescribePullThroughCacheRules", "DeletePullThroughCacheRule"):
        return None
    try:
        body = req.json()
    except ValueError:
        return error("InvalidParameterException", "the request body is not JSON")
    refused = validate(op, body)
    if refused:
        return refused
    region = req.region
    if op == "CreatePullThroughCacheRule":
        prefix, upstream = body["ecrRepositoryPrefix"], body.get("upstreamRegistry")
        url = body["upstreamRegistryUrl"]
        expected = UPSTREAM_URLS.get(upstream)
        if upstream and expected and url != expected:
            return error("InvalidParameterException", f"upstreamRegistryUrl {url} is not the URL of {upstream} ({expected})")
        credential = body.get("credentialArn")
        if upstream in NEEDS_CREDENTIAL and not credential:
            return error("InvalidParameterException", f"A credentialArn is required for upstream registry {upstream}")
        if credential:
            if f":secretsmanager:{region}:{SHIM.ACCOUNT}:" not in credential:
                return error("SecretNotFoundException", f"The specified secret {credential} was not found in this account and Region")
            try:
                value = secret_value(region, credential)
            except KeyError:
                return error("SecretNotFoundException", f"The specified secret {credential} does not exist")
            try:
                parsed = json.loads(value or "")
                ok = isinstance(parsed, dict) and parsed.get("username") and parsed.get("accessToken")
            except ValueError:
                ok = False
            if not ok:
                return error("UnableToDecryptSecretValueException", "The secret must contain a username and accessToken")
        with LOCK:
            if (region, prefix) in RULES:
                return error("PullThroughCacheRuleAlreadyExistsException", f"A pull through cache rule with prefix '{prefix}' already exists")
            rule = {
                "ecrRepositoryPrefix": prefix,
                "upstreamRegistryUrl": url,
                "createdAt": time.time(),
                "registryId": SHIM.ACCOUNT,
                "upstreamRegistry": upstream,
                "credentialArn": credential,
                "updatedAt": time.time(),
            }
            RULES[(region, prefix)] = rule
        return SHIM.reply_json(200, public_rule({k: v for k, v in rule.items() if k != "updatedAt"}))
    if op == "DescribePullThroughCacheRules":
        wanted = body.get("ecrRepositoryPrefixes")
        with LOCK:
            rules = [r for (reg, _), r in sorted(RULES.items()) if reg == region]
        if wanted:
            known = {r["ecrRepositoryPrefix"] for r in rules}
            missing = [p for p in wanted if p not in known]
            if missing:
                return error("PullThroughCacheRuleNotFoundException", f"The pull through cache rule with prefix '{missing[0]}' does not exist")
            rules = [r for r in rules if r["ecrRepositoryPrefix"] in wanted]
        start = int(body.get("nextToken") or 0)
        size = body.get("maxResults") or 100
        page = rules[start:start + size]
        answer = {"pullThroughCacheRules": [public_rule(r) for r in page]}
        if start + size < len(rules):
            answer["nextToken"] = str(start + size)
        return SHIM.reply_json(200, answer)
    # DeletePullThroughCacheRule
    prefix = body["ecrRepositoryPrefix"]
    with LOCK:
        rule = RULES.pop((region, prefix), None)
    if rule is None:
        return error("PullThroughCacheRuleNotFoundException", f"The pull through cache rule with prefix '{prefix}' does not exist")
    return SHIM.reply_json(200, public_rule({k: v for k, v in rule.items() if k not in ("updatedAt", "upstreamRegistry")}))


def pull(req):
    """A first pull through the cache: the rule's repository appears in moto's ECR."""
    doc = req.json()
    region, repository = doc.get("region", "us-east-1"), doc["repository"]
    with LOCK:
        covered = any(reg == region and repository.startswith(prefix + "/") for (reg, prefix) in RULES)
    created = False
    if covered:
        from moto.ecr.models import ecr_backends

        backend = ecr_backends[SHIM.ACCOUNT][region]
        if repository not in backend.repositories:
            backend.create_repository(repository, None, None, [], None, None)
            created = True
    return SHIM.reply_json(200, {"covered": covered, "created": created})


def control(req):
    if req.path == "/glrunner-shim/ecr-pull" and req.method == "POST":
        return pull(req)
    if req.path == "/moto-api/reset" and req.method == "POST":
        with LOCK:
            RULES.clear()
    return None


def gateway_endpoint(req):
    """Strict CreateVpcEndpoint for gateways (see the module docstring)."""
    if req.service != "ec2" or req.action != "CreateVpcEndpoint" or not SHIM.strict("gateway_endpoints"):
        return None
    if (req.params.get("VpcEndpointType") or "Gateway").lower() != "gateway":
        return None
    vpc_id = req.params.get("VpcId", "")
    service = req.params.get("ServiceName", "")
    tables = [v for k, v in sorted(req.params.items()) if re.fullmatch(r"RouteTableId\.\d+", k)]
    backend = SHIM.ec2_backend(req.region)
    offered = {s["ServiceName"] for s in backend.describe_vpc_endpoint_services(service_names=[], filters=[], max_results=None, next_token=None, region=req.region)["servicesDetails"]}
    if service not in offered:
        return SHIM.ec2_error("InvalidServiceName", f"The Vpc Endpoint Service '{service}' does not exist")
    for table in tables:
        found = backend.route_tables.get(table)
        if found is None or found.vpc_id != vpc_id:
            return SHIM.ec2_error("InvalidRouteTableId.NotFound", f"The routeTable ID '{table}' does not exist")
    for endpoint in backend.vpc_end_points.values():
        if endpoint.service_name == service and getattr(endpoint, "state", "available") != "deleted":
            shared = set(endpoint.route_table_ids or []) & set(tables)
            if shared:
                return SHIM.ec2_error(
                    "RouteAlreadyExists",
                    f"route table {sorted(shared)[0]} already has a route with destination-prefix-list-id for {service}",
                )
    return None


def register(shim):
    global SHIM
    SHIM = shim
    shim.CONFIG.setdefault("gateway_endpoints", True)
    shim.route(control)
    shim.route(ecr)
    shim.route(gateway_endpoint)
