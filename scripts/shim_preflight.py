"""What glrunner's preflight (`doctor`) asks AWS and moto 5.2 does not answer like AWS: Service
Quotas for Fargate/EC2/EKS, `iam:SimulatePrincipalPolicy`, and the Price List API. Test support
only; loaded by moto_shim.py (every scripts/shim_*.py is, through its `register(shim)`).

State, set by the tests with `POST /glrunner-shim/preflight` and a JSON object (keys merge;
`GET` shows it; `POST /moto-api/reset` clears it):

- `quotas`: {"<service>/<quota code>": value} applied values. GetServiceQuota answers
  NoSuchResourceException for a quota without an applied value (the caller then asks
  GetAWSDefaultServiceQuota, which answers AWS's defaults below); other VPC quotas go to moto
  (it knows some), any other unknown quota is NoSuchResourceException (moto answers HTTP 500).
- `deny`: IAM actions the caller is denied: SimulatePrincipalPolicy reports `implicitDeny` for
  them whatever the principal's policies say.

Policies. SimulatePrincipalPolicy evaluates the principal's identity policies (inline and
attached, its groups' too) as IAM does (below, "IAM policy evaluation"), against each
`ResourceArns` entry (`*` when none is given, as AWS defaults) and the `ContextEntries` sent.
A principal without any policy is allowed everything: moto's default caller (the IAM user
`moto`, what every test's `test` access key is) and the roles tests assume to play an SSO admin
stand for administrators. This departs from AWS (which denies a principal without policies
everything) on purpose: only a test that gives a principal a policy asks for IAM's judgement,
and that principal is denied what its policies do not allow, as on AWS.

Tag on create. A create call that carries tags, made with an access key of a user or role with
policies, is refused unless the caller may call the create action and its tagging action
(EC2 `ec2:CreateTags` with `ec2:CreateAction`, IAM `iam:TagRole`, EKS `eks:TagResource`), with
the request's tags and Region as condition context; see `tag_on_create`.
- `deny_simulation`: SimulatePrincipalPolicy itself answers AccessDenied.
- `prices`: {"<region>": {"fargate_vcpu_hour": usd, "fargate_gb_hour": usd,
  "eks_cluster_hour": usd}} served by the Price List API's GetProducts (AmazonECS, AmazonEKS) as
  product documents shaped like AWS's, next to ARM, Windows and Fargate Spot products the caller
  must not pick (Spot's usage type, `<code>-SpotUsage-Fargate-vCPU-Hours:perCPU`, ends like
  On-Demand's: the USE1-SpotUsage-Fargate-GB-Hours row of the Cost and Usage Report,
  cur.vantage.sh/aws/amazonecs/compute/use1-spotusage-fargate-gb-hours; EKS has no Fargate Spot,
  aws/containers-roadmap#622). Regions without an entry get the US list prices when they are us-east-1, us-east-2
  or us-west-2, and no products otherwise.
- `pricing_denied`: GetProducts answers AccessDeniedException.
"""

import json
import re
from urllib.parse import unquote
from xml.sax.saxutils import escape

SHIM = None
DEFAULT_STATE = {"quotas": {}, "deny": [], "deny_simulation": False, "prices": {}, "pricing_denied": False}
STATE = json.loads(json.dumps(DEFAULT_STATE))

# AWS's default values (Service Quotas console, 2025): (service name, quota name, value).
DEFAULT_QUOTAS = {
    ("fargate", "L-3032A538"): ("AWS Fargate", "Fargate On-Demand vCPU resource count", 6.0),
    ("ec2", "L-0263D0A3"): ("Amazon Elastic Compute Cloud (Amazon EC2)", "EC2-VPC Elastic IPs", 5.0),
    ("vpc", "L-F678F1CE"): ("Amazon Virtual Private Cloud (Amazon VPC)", "VPCs per Region", 5.0),
    ("vpc", "L-FE5A380F"): ("Amazon Virtual Private Cloud (Amazon VPC)", "NAT gateways per Availability Zone", 5.0),
    ("eks", "L-1194D53C"): ("Amazon Elastic Kubernetes Service (Amazon EKS)", "Clusters", 100.0),
}

US_PRICES = {"fargate_vcpu_hour": 0.04048, "fargate_gb_hour": 0.004445, "eks_cluster_hour": 0.10}
DEFAULT_PRICES = {"us-east-1": US_PRICES, "us-east-2": US_PRICES, "us-west-2": US_PRICES}
# Region billing codes, the prefix of every usage type (AWS General Reference, "AWS Region
# billing codes", docs.aws.amazon.com/global-infrastructure/latest/regions/aws-region-billing-codes.html).
USAGE_PREFIX = {
    "us-east-1": "USE1", "us-east-2": "USE2", "us-west-1": "USW1", "us-west-2": "USW2",
    "eu-west-1": "EU", "eu-west-2": "EUW2", "eu-central-1": "EUC1", "ap-northeast-1": "APN1",
    "ap-south-1": "APS3", "ap-southeast-2": "APS2",
}
# Fargate Spot's discount on the On-Demand price (AWS Fargate pricing: "up to 70%").
SPOT_FACTOR = 0.3

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
SIMULATION_PAGE = 100


def register(shim):
    global SHIM
    SHIM = shim
    shim.route(control)
    # Authorisation comes before any of the checks the other routes make (an EKS create is refused
    # for a missing permission before its role or zones are looked at).
    shim.ROUTES.insert(0, tag_on_create)
    shim.route(service_quotas)
    shim.route(simulate_principal_policy)
    shim.route(price_list)


def control(req):
    if req.path == "/glrunner-shim/preflight":
        if req.method == "POST":
            with SHIM.LOCK:
                STATE.update(req.json())
        return SHIM.reply_json(200, STATE)
    if req.path == "/moto-api/reset" and req.method == "POST":
        with SHIM.LOCK:
            STATE.clear()
            STATE.update(json.loads(json.dumps(DEFAULT_STATE)))
    return None


def target(req):
    return req.environ.get("HTTP_X_AMZ_TARGET", "")


# ---------------------------------------------------------------------------------------------
# Service Quotas (awsJson1_1, X-Amz-Target: ServiceQuotasV20190624.<Operation>)


def quota_body(region, service, code, value):
    service_name, quota_name, _ = DEFAULT_QUOTAS[(service, code)]
    return {
        "Quota": {
            "ServiceCode": service,
            "ServiceName": service_name,
            "QuotaArn": f"arn:aws:servicequotas:{region}:{SHIM.ACCOUNT}:{service}/{code}",
            "QuotaCode": code,
            "QuotaName": quota_name,
            "Value": float(value),
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }
    }


def service_quotas(req):
    op = target(req)
    if not op.startswith("ServiceQuotasV20190624."):
        return None
    op = op.split(".", 1)[1]
    if op not in ("GetServiceQuota", "GetAWSDefaultServiceQuota"):
        return None
    body = req.json()
    service, code = body.get("ServiceCode", ""), body.get("QuotaCode", "")
    if (service, code) not in DEFAULT_QUOTAS:
        if service == "vpc":
            return None  # moto's own VPC quotas
        # moto answers HTTP 500 here; AWS answers NoSuchResourceException.
        message = f"The request failed because the specified service {service} or quota {code} does not exist."
        return SHIM.reply_json(400, {"__type": "NoSuchResourceException", "Message": message}, "NoSuchResourceException")
    if op == "GetAWSDefaultServiceQuota":
        return SHIM.reply_json(200, quota_body(req.region, service, code, DEFAULT_QUOTAS[(service, code)][2]))
    with SHIM.LOCK:
        applied = STATE["quotas"].get(f"{service}/{code}")
    if applied is None:
        message = f"The request failed because the specified quota {code} of service {service} has no applied value."
        return SHIM.reply_json(400, {"__type": "NoSuchResourceException", "Message": message}, "NoSuchResourceException")
    return SHIM.reply_json(200, quota_body(req.region, service, code, applied))


# ---------------------------------------------------------------------------------------------
# iam:SimulatePrincipalPolicy (awsQuery)


def iam_error(status, code, message):
    return SHIM.reply_xml(
        status,
        f'<ErrorResponse xmlns="{IAM_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>glrunner-shim</RequestId></ErrorResponse>",
    )


def principal_known(region, arn):
    """An IAM user or role of moto's, or the caller moto's STS makes up (`…:user/moto`)."""
    if arn in (f"arn:aws:sts::{SHIM.ACCOUNT}:user/moto", f"arn:aws:iam::{SHIM.ACCOUNT}:user/moto"):
        return True
    return principal_entity(region, arn) is not None


def principal_entity(region, arn):
    """The moto IAM user or role whose ARN (path included) is `arn`, else None."""
    backend = SHIM.iam_backend(region)
    for entity in list(backend.users.values()) + list(backend.roles.values()):
        if entity.arn == arn:
            return entity
    return None


def principal_policies(region, arn):
    """The identity-based policy documents of a principal: inline and attached managed policies,
    and for an IAM user those of its groups (IAM User Guide, "Policy evaluation logic":
    identity-based policies are those attached to the user, its groups or the role). `None` for
    the administrator stand-in: a principal without any policy (see the module's "Policies")."""
    entity = principal_entity(region, arn)
    backend = SHIM.iam_backend(region)
    holders = [entity] if entity is not None else []
    if entity is not None and ":user/" in arn:
        try:
            holders += backend.get_groups_for_user(entity.name)
        except Exception:
            pass
    docs = []
    for holder in holders:
        docs += [json.loads(unquote(d)) if isinstance(d, str) else d for d in holder.policies.values()]
        for managed in holder.managed_policies.values():
            version = next((v for v in managed.versions if v.is_default), None)
            if version is not None and version.document:
                doc = version.document
                docs.append(json.loads(unquote(doc)) if isinstance(doc, str) else doc)
    return docs or None


# ---------------------------------------------------------------------------------------------
# IAM policy evaluation, as the IAM User Guide describes it (reference_policies_evaluation-logic:
# an explicit Deny in any policy wins, else an Allow is needed, else the request is implicitly
# denied; reference_policies_elements_action/_resource/_condition and
# reference_policies_condition-operators / reference_policies_condition-single-vs-multi-valued-
# context-keys for how one statement matches). Identity policies only: no resource policies,
# permissions boundaries, session policies or SCPs (glrunner's calls meet none in the tests).


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def glob_match(pattern, value, ignore_case):
    """`*` any run of characters, `?` one character (Action and Resource wildcards)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def action_matches(pattern, action):
    # "Action … names are case insensitive" (reference_policies_elements_action).
    return glob_match(pattern, action, ignore_case=True)


def resource_matches(pattern, arn):
    """A Resource ARN pattern against a resource ARN: the partition, service, Region and account
    segments one by one, then the resource part (which may hold `:` and `/`), wildcards allowed
    in each and case-sensitive (reference_policies_elements_resource: "ARNs are case sensitive";
    wildcards "within any ARN segment")."""
    if pattern == "*":
        return True
    p, a = pattern.split(":", 5), arn.split(":", 5)
    if len(p) != 6 or len(a) != 6:
        return glob_match(pattern, arn, ignore_case=False)
    return all(glob_match(x, y, ignore_case=False) for x, y in zip(p, a))


def string_op(name):
    """(match(condition value, context value), negated) of a string/ARN condition operator."""
    table = {
        "StringEquals": (lambda c, v: c == v, False),
        "StringNotEquals": (lambda c, v: c == v, True),
        "StringEqualsIgnoreCase": (lambda c, v: c.lower() == v.lower(), False),
        "StringNotEqualsIgnoreCase": (lambda c, v: c.lower() == v.lower(), True),
        "StringLike": (lambda c, v: glob_match(c, v, ignore_case=False), False),
        "StringNotLike": (lambda c, v: glob_match(c, v, ignore_case=False), True),
        "ArnEquals": (lambda c, v: c == v, False),
        "ArnNotEquals": (lambda c, v: c == v, True),
        "ArnLike": (lambda c, v: resource_matches(c, v), False),
        "ArnNotLike": (lambda c, v: resource_matches(c, v), True),
        "Bool": (lambda c, v: str(c).lower() == str(v).lower(), False),
    }
    if name not in table:
        raise ValueError(f"condition operator {name} is not modelled by the shim")
    return table[name]


def condition_holds(operator, key, wanted, context):
    """One key of one operator (reference_policies_condition-operators and -single-vs-multi-valued-
    context-keys). Condition values are ORed. A missing key fails a positive operator and passes
    a negated one; `…IfExists` passes when the key is missing; `ForAllValues:` passes when every
    context value matches some condition value (also when the key is missing: the docs' warning),
    `ForAnyValue:` when at least one does."""
    wanted = [str(w) for w in as_list(wanted)]
    values = context.get(key.lower())
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    if operator == "Null":
        absent = values is None or values == []
        return any((w.lower() == "true") == absent for w in wanted)
    match, negated = string_op(operator)
    if values is None:
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return if_exists or negated

    def one(value):
        hit = any(match(w, value) for w in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    # A single-valued key, or ForAnyValue over a multivalued one.
    return any(one(v) for v in values)


def conditions_hold(condition, context):
    # Operators are ANDed, keys within one operator are ANDed (reference_policies_elements_condition).
    return all(
        condition_holds(operator, key, wanted, context)
        for operator, keys in (condition or {}).items()
        for key, wanted in keys.items()
    )


def statement_applies(statement, action, resource, context):
    if "Action" in statement:
        if not any(action_matches(p, action) for p in as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(action_matches(p, action) for p in as_list(statement["NotAction"])):
            return False
    else:
        return False
    if "Resource" in statement:
        if not any(resource_matches(p, resource) for p in as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(resource_matches(p, resource) for p in as_list(statement["NotResource"])):
            return False
    else:
        return False
    return conditions_hold(statement.get("Condition"), context)


def evaluate(policies, action, resource, context):
    """`allowed`, `explicitDeny` or `implicitDeny` for one action on one resource."""
    if policies is None:
        return "allowed"
    allowed = False
    for doc in policies:
        for statement in as_list(doc.get("Statement")):
            if statement_applies(statement, action, resource, context):
                if statement.get("Effect") == "Deny":
                    return "explicitDeny"
                if statement.get("Effect") == "Allow":
                    allowed = True
    return "allowed" if allowed else "implicitDeny"


def simulation_context(params):
    """ContextEntries.member.N.{ContextKeyName, ContextKeyValues.member.M, ContextKeyType} of a
    SimulatePrincipalPolicy request (IAM API reference, ContextEntry), keys lower-cased: condition
    key names are case-insensitive (reference_policies_elements_condition)."""
    context = {}
    n = 1
    while f"ContextEntries.member.{n}.ContextKeyName" in params:
        key = params[f"ContextEntries.member.{n}.ContextKeyName"]
        values, m = [], 1
        while f"ContextEntries.member.{n}.ContextKeyValues.member.{m}" in params:
            values.append(params[f"ContextEntries.member.{n}.ContextKeyValues.member.{m}"])
            m += 1
        context[key.lower()] = values
        n += 1
    return context


def members(params, name):
    out, n = [], 1
    while f"{name}.member.{n}" in params:
        out.append(params[f"{name}.member.{n}"])
        n += 1
    return out


def simulate_principal_policy(req):
    if req.service != "iam" or req.action != "SimulatePrincipalPolicy":
        return None
    source = req.params.get("PolicySourceArn", "")
    with SHIM.LOCK:
        denied_simulation = STATE["deny_simulation"]
        deny = set(STATE["deny"])
    if denied_simulation:
        return iam_error(
            403,
            "AccessDenied",
            f"User: arn:aws:iam::{SHIM.ACCOUNT}:user/moto is not authorized to perform: "
            f"iam:SimulatePrincipalPolicy on resource: {source}",
        )
    if not principal_known(req.region, source):
        return iam_error(404, "NoSuchEntity", f"The principal {source} does not exist.")
    actions = members(req.params, "ActionNames")
    if not actions:
        return iam_error(400, "ValidationError", "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null")
    # "If you do not specify a value for this parameter, the value defaults to * (all
    # resources). Each API in the ActionNames parameter is evaluated for each resource in this
    # list." (SimulatePrincipalPolicy, ResourceArns): one result per action and resource.
    resources = members(req.params, "ResourceArns") or ["*"]
    context = simulation_context(req.params)
    with SHIM.LOCK:
        policies = principal_policies(req.region, source)
    results = []
    for action in actions:
        for resource in resources:
            decision = "implicitDeny" if action in deny else evaluate(policies, action, resource, context)
            results.append((action, resource, decision))
    start = int(req.params.get("Marker") or 0)
    page_size = int(req.params.get("MaxItems") or SIMULATION_PAGE)
    page = results[start : start + page_size]
    body = "".join(
        f"<member><EvalActionName>{escape(a)}</EvalActionName><EvalResourceName>{escape(r)}</EvalResourceName>"
        f"<EvalDecision>{d}</EvalDecision>"
        f"<MatchedStatements/><MissingContextValues/></member>"
        for a, r, d in page
    )
    truncated = start + page_size < len(results)
    marker = f"<Marker>{start + page_size}</Marker>" if truncated else ""
    return SHIM.reply_xml(
        200,
        f'<SimulatePrincipalPolicyResponse xmlns="{IAM_NS}"><SimulatePrincipalPolicyResult>'
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{marker}"
        f"<EvaluationResults>{body}</EvaluationResults></SimulatePrincipalPolicyResult>"
        f"<ResponseMetadata><RequestId>glrunner-shim</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>",
    )


# ---------------------------------------------------------------------------------------------
# Tag on create: a create call that carries tags is also authorised for the service's tagging
# action, with the request's tags as condition context.
#
# - EC2 User Guide, "Grant permission to tag Amazon EC2 resources during creation": "To tag on
#   resource creation, users must have permissions to use the action that creates the resource,
#   such as ec2:RunInstances ... If tags are specified in the resource-creating action, Amazon
#   performs additional authorization on the ec2:CreateTags action to verify if users have
#   permissions to create tags"; the `ec2:CreateAction` condition key names the create action.
# - IAM User Guide, "Permissions required to tag IAM entities" / "Tagging IAM roles": creating a
#   role with tags needs iam:TagRole besides iam:CreateRole.
# - Service Authorization Reference, Amazon EKS ("API operations" table): CreateCluster,
#   CreateFargateProfile, CreateAddon and CreateAccessEntry each authorise eks:TagResource too.
#
# What AWS answers: EC2 `UnauthorizedOperation`, IAM `AccessDenied` (403), EKS
# `AccessDeniedException` (403), each "User: <arn> is not authorized to perform: <action> on
# resource: <arn>".

EC2_TAGGED_CREATES = {
    "CreateVpc": "vpc",
    "CreateSubnet": "subnet",
    "CreateInternetGateway": "internet-gateway",
    "AllocateAddress": "elastic-ip",
    "CreateNatGateway": "natgateway",
    "CreateRouteTable": "route-table",
    "CreateSecurityGroup": "security-group",
}
EKS_CLUSTERS = re.compile(r"^/clusters$")
EKS_CHILD = re.compile(r"^/clusters/(?P<cluster>[^/]+)/(?P<kind>fargate-profiles|addons|access-entries)$")


def tag_context(region, tags):
    context = {"aws:requestedregion": [region], "aws:tagkeys": list(tags)}
    for key, value in tags.items():
        context[f"aws:requesttag/{key}".lower()] = [value]
    return context


def ec2_request_tags(params):
    tags, n = {}, 1
    while f"TagSpecification.{n}.ResourceType" in params:
        m = 1
        while f"TagSpecification.{n}.Tag.{m}.Key" in params:
            tags[params[f"TagSpecification.{n}.Tag.{m}.Key"]] = params.get(f"TagSpecification.{n}.Tag.{m}.Value", "")
            m += 1
        n += 1
    return tags


def refused(region, caller, checks):
    """The first (action, resource, context) the caller's policies do not allow, else None."""
    with SHIM.LOCK:
        policies = principal_policies(region, caller)
    for action, resource, context in checks:
        if evaluate(policies, action, resource, context) != "allowed":
            return action, resource
    return None


def not_authorized(caller, action, resource):
    return f"User: {caller} is not authorized to perform: {action} on resource: {resource}"


def tag_on_create(req):
    caller = None
    if req.service == "ec2" and req.action in EC2_TAGGED_CREATES:
        tags = ec2_request_tags(req.params)
        if not tags:
            return None
        caller = SHIM.principal_for_access_key(req.region, req.access_key)
        kind = EC2_TAGGED_CREATES[req.action]
        arn = f"arn:aws:ec2:{req.region}:{SHIM.ACCOUNT}:{kind}/*"
        context = tag_context(req.region, tags)
        context["ec2:createaction"] = [req.action]
        denied = refused(req.region, caller, [(f"ec2:{req.action}", arn, context), ("ec2:CreateTags", arn, context)])
        if denied:
            return SHIM.ec2_error("UnauthorizedOperation", escape(f"You are not authorized to perform this operation. {not_authorized(caller, *denied)}"))
        return None
    if req.service == "iam" and req.action == "CreateRole":
        tags = {}
        n = 1
        while f"Tags.member.{n}.Key" in req.params:
            tags[req.params[f"Tags.member.{n}.Key"]] = req.params.get(f"Tags.member.{n}.Value", "")
            n += 1
        if not tags:
            return None
        caller = SHIM.principal_for_access_key(req.region, req.access_key)
        path = req.params.get("Path") or "/"
        arn = f"arn:aws:iam::{SHIM.ACCOUNT}:role{path}{req.params.get('RoleName', '')}"
        # IAM is global: its requests are made in us-east-1 (aws:RequestedRegion, IAM User Guide
        # reference_policies_condition-keys).
        context = tag_context("us-east-1", tags)
        denied = refused(req.region, caller, [("iam:CreateRole", arn, context), ("iam:TagRole", arn, context)])
        if denied:
            return iam_error(403, "AccessDenied", not_authorized(caller, *denied))
        return None
    if req.service == "eks" and req.method == "POST":
        body = req.json()
        tags = body.get("tags") or {}
        if not tags:
            return None
        prefix = f"arn:aws:eks:{req.region}:{SHIM.ACCOUNT}"
        if EKS_CLUSTERS.match(req.path):
            name = body.get("name", "")
            # eks:CreateCluster has no resource type (Service Authorization Reference): `*`.
            checks = [("eks:CreateCluster", "*"), ("eks:TagResource", f"{prefix}:cluster/{name}")]
        else:
            m = EKS_CHILD.match(req.path)
            if not m:
                return None
            cluster = unquote(m.group("cluster"))
            cluster_arn = f"{prefix}:cluster/{cluster}"
            if m.group("kind") == "fargate-profiles":
                child = ("eks:CreateFargateProfile", f"{prefix}:fargateprofile/{cluster}/{body.get('fargateProfileName', '')}/*")
            elif m.group("kind") == "addons":
                child = ("eks:CreateAddon", f"{prefix}:addon/{cluster}/{body.get('addonName', '')}/*")
            else:
                child = ("eks:CreateAccessEntry", f"{prefix}:access-entry/{cluster}/*")
            checks = [(child[0], cluster_arn), ("eks:TagResource", child[1])]
        caller = SHIM.principal_for_access_key(req.region, req.access_key)
        context = tag_context(req.region, tags)
        denied = refused(req.region, caller, [(a, r, context) for a, r in checks])
        if denied:
            return SHIM.reply_json(403, {"message": not_authorized(caller, *denied)}, "AccessDeniedException")
    return None


# ---------------------------------------------------------------------------------------------
# Price List API (awsJson1_1, X-Amz-Target: AWSPriceListService.GetProducts)


def product(service_code, region, usagetype, usd, family="Compute", **attributes):
    sku = f"{service_code}-{region}-{usagetype}".replace(":", "-")
    return {
        "product": {
            "productFamily": family,
            "attributes": dict(regionCode=region, usagetype=usagetype, servicecode=service_code, **attributes),
            "sku": sku,
        },
        "serviceCode": service_code,
        "terms": {
            "OnDemand": {
                f"{sku}.JRTCKXETXF": {
                    "priceDimensions": {
                        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {"unit": "hours", "pricePerUnit": {"USD": f"{usd:.10f}"}, "description": usagetype}
                    },
                    "sku": sku,
                    "effectiveDate": "2025-01-01T00:00:00Z",
                }
            }
        },
        "version": "20250101000000",
        "publicationDate": "2025-01-01T00:00:00Z",
    }


def products_for(service_code, region):
    with SHIM.LOCK:
        prices = STATE["prices"].get(region) or DEFAULT_PRICES.get(region)
    if not prices:
        return []
    prefix = USAGE_PREFIX.get(region)
    if prefix is None:
        return []
    if service_code == "AmazonECS":
        vcpu, gb = prices.get("fargate_vcpu_hour"), prices.get("fargate_gb_hour")
        out = []
        # Variants a caller must not mistake for Linux/x86 on-demand come first.
        if vcpu is not None:
            out.append(product(service_code, region, f"{prefix}-SpotUsage-Fargate-vCPU-Hours:perCPU", vcpu * SPOT_FACTOR, cputype="perCPU"))
            out.append(product(service_code, region, f"{prefix}-Fargate-ARM-vCPU-Hours:perCPU", vcpu * 0.8, cputype="perCPU"))
            out.append(product(service_code, region, f"{prefix}-Fargate-Windows-vCPU-Hours:perCPU", vcpu * 1.4, cputype="perCPU"))
            out.append(product(service_code, region, f"{prefix}-Fargate-vCPU-Hours:perCPU", vcpu, cputype="perCPU"))
        if gb is not None:
            out.append(product(service_code, region, f"{prefix}-SpotUsage-Fargate-GB-Hours", gb * SPOT_FACTOR, memorytype="perGB"))
            out.append(product(service_code, region, f"{prefix}-Fargate-ARM-GB-Hours", gb * 0.8, memorytype="perGB"))
            out.append(product(service_code, region, f"{prefix}-Fargate-GB-Hours", gb, memorytype="perGB"))
        out.append(product(service_code, region, f"{prefix}-Fargate-EphemeralStorage-GB-Hours", 0.000111, family="Storage"))
        return out
    if service_code == "AmazonEKS":
        hour = prices.get("eks_cluster_hour")
        out = [product(service_code, region, f"{prefix}-AmazonEKS-Hours:perCluster:ExtendedSupport", 0.60)]
        if hour is not None:
            out.append(product(service_code, region, f"{prefix}-AmazonEKS-Hours:perCluster", hour))
        return out
    return []


def price_list(req):
    if target(req) != "AWSPriceListService.GetProducts":
        return None
    with SHIM.LOCK:
        denied = STATE["pricing_denied"]
    if denied:
        message = "User is not authorized to perform: pricing:GetProducts"
        return SHIM.reply_json(400, {"__type": "AccessDeniedException", "Message": message}, "AccessDeniedException")
    body = req.json()
    service_code = body.get("ServiceCode")
    if not service_code:
        return SHIM.reply_json(400, {"__type": "InvalidParameterException", "Message": "ServiceCode is required"}, "InvalidParameterException")
    filters = body.get("Filters") or []
    regions = [f["Value"] for f in filters if f.get("Field") == "regionCode"]
    if not regions:
        # Real AWS answers every region's products; glrunner always filters by regionCode.
        return SHIM.reply_json(400, {"__type": "InvalidParameterException", "Message": "this shim needs a regionCode filter"}, "InvalidParameterException")
    items = products_for(service_code, regions[0])
    for f in filters:
        if f.get("Type") != "TERM_MATCH":
            return SHIM.reply_json(400, {"__type": "InvalidParameterException", "Message": f"unsupported filter type {f.get('Type')}"}, "InvalidParameterException")
        items = [p for p in items if str(p["product"]["attributes"].get(f["Field"], p["product"].get(f["Field"]))) == f["Value"]]
    start = int(body.get("NextToken") or 0)
    size = int(body.get("MaxResults") or 100)
    page = items[start : start + size]
    answer = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(p) for p in page]}
    if start + size < len(items):
        answer["NextToken"] = str(start + size)
    return SHIM.reply_json(200, answer)
