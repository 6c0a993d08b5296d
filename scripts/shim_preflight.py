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
  them and `allowed` for every other action.
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
    backend = SHIM.iam_backend(region)
    return any(u.arn == arn for u in backend.users.values()) or any(r.arn == arn for r in backend.roles.values())


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
    actions = []
    n = 1
    while f"ActionNames.member.{n}" in req.params:
        actions.append(req.params[f"ActionNames.member.{n}"])
        n += 1
    if not actions:
        return iam_error(400, "ValidationError", "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null")
    start = int(req.params.get("Marker") or 0)
    page_size = int(req.params.get("MaxItems") or SIMULATION_PAGE)
    page = actions[start : start + page_size]
    members = "".join(
        f"<member><EvalActionName>{escape(a)}</EvalActionName><EvalResourceName>*</EvalResourceName>"
        f"<EvalDecision>{'implicitDeny' if a in deny else 'allowed'}</EvalDecision>"
        f"<MatchedStatements/><MissingContextValues/></member>"
        for a in page
    )
    truncated = start + page_size < len(actions)
    marker = f"<Marker>{start + page_size}</Marker>" if truncated else ""
    return SHIM.reply_xml(
        200,
        f'<SimulatePrincipalPolicyResponse xmlns="{IAM_NS}"><SimulatePrincipalPolicyResult>'
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{marker}"
        f"<EvaluationResults>{members}</EvaluationResults></SimulatePrincipalPolicyResult>"
        f"<ResponseMetadata><RequestId>glrunner-shim</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>",
    )


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
