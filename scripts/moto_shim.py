"""moto server plus what moto 5.2 lacks for glrunner's tests: EKS add-ons and access entries,
and a strict mode that refuses what real AWS refuses. Test support only.

Routes. Every request goes through ROUTES in order; a route returns a response or None to pass
on. What no route answers goes to moto unchanged. Another module can add routes: every
`scripts/shim_*.py` file is imported at start and its `register(shim)` is called with this
module, so it can use `shim.route`, `shim.Request`, `shim.reply_json`, `shim.reply_xml`,
`shim.CONFIG` and `shim.ACCOUNT`.

EKS routes moto lacks: CreateAddon/ListAddons/DescribeAddon/DeleteAddon and the access-entry
calls are served from memory, checked against moto's own EKS backend (a deleted cluster takes
its add-ons and access entries with it).

Strict mode (on unless GLRUNNER_SHIM_STRICT=0; switch at run time with
`POST /glrunner-shim/config` and a JSON object of the keys below; `GET` shows them):

- `iam_propagation_s` (2): an IAM role younger than this cannot be used yet: CreateCluster
  answers EKS's "Role with arn: …, could not be assumed because it does not exist or the
  trusted entity is not correct", CreateFargateProfile "Misconfigured PodExecutionRole Trust
  Property". A role without the right trust or without AmazonEKSClusterPolicy is refused forever.
- `ec2_consistency_s` (10): the first ModifyVpcAttribute/CreateSubnet/AttachInternetGateway/
  CreateNatGateway/CreateRoute/AssociateRouteTable naming an id created less than this ago
  answers `Invalid…ID.NotFound` ("Eventual consistency in the Amazon EC2 API").
- `zones` (true): DescribeAvailabilityZones lists an opted-in Local Zone (us-east-1-bos-1a,
  us-west-2-lax-1a) unless filtered by zone-type, and this "account" maps us-east-1a to
  use1-az3, the zone ID EKS refuses (names map to IDs differently per account); CreateCluster
  on a refused zone answers UnsupportedAvailabilityZoneException with the valid zones.
- `principals` (true): CreateAccessEntry accepts only the ARN of an existing IAM role or user,
  path included; an unknown caller is the IAM user `moto` (created on first sight), not moto's
  made-up `arn:aws:sts::…:user/moto`.
- `creation_delay_s` (0, or GLRUNNER_SHIM_CREATION_DELAY_S): clusters, Fargate profiles and
  add-ons stay CREATING this long after their creation (time to interrupt a run).
- `eip_auth_failure_s` (2, or GLRUNNER_SHIM_EIP_AUTH_FAILURE_S): ReleaseAddress of an address
  whose NAT gateway was deleted less than this ago answers `AuthFailure` ("You do not have
  permission to access the specified resource."), as EC2 does for a while after the NAT gateway
  is gone.
- `role_paths` (true): CreateFargateProfile refuses a pod execution role ARN with an IAM path.
- `access_policies_page_size` (100, EKS's default maxResults): page size of
  ListAssociatedAccessPolicies when the caller sends no maxResults.

Shared accounts: `POST /glrunner-shim/foreign-clusters` with {"region": …, "name": …} adds an
EKS cluster that belongs to someone else: ListClusters lists it, every call under it (DescribeCluster
first) answers AccessDeniedException for every caller. `DELETE` removes them all again.

`POST /moto-api/reset` also clears the shim's own state (not its configuration).

Usage: python3 moto_shim.py HOST PORT
"""

import datetime
import glob
import importlib.util
import io
import json
import os
import re
import sys
import threading
import time
from urllib.parse import parse_qs, unquote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

ACCOUNT = "123456789012"
LOCK = threading.RLock()
MOTO = DomainDispatcherApplication(create_backend_app)

CONFIG = {
    "strict": os.environ.get("GLRUNNER_SHIM_STRICT", "1") != "0",
    "iam_propagation_s": float(os.environ.get("GLRUNNER_SHIM_IAM_PROPAGATION_S", "2")),
    "ec2_consistency_s": float(os.environ.get("GLRUNNER_SHIM_EC2_CONSISTENCY_S", "10")),
    "zones": True,
    "principals": True,
    "creation_delay_s": float(os.environ.get("GLRUNNER_SHIM_CREATION_DELAY_S", "0")),
    "eip_auth_failure_s": float(os.environ.get("GLRUNNER_SHIM_EIP_AUTH_FAILURE_S", "2")),
    "role_paths": True,
    "access_policies_page_size": 100,
}

# Shim state, cleared by /moto-api/reset.
STATE = {
    "eks": {},  # (region, cluster) -> {"addons": {}, "access-entries": {}}
    "ec2_created": {},  # id -> creation time
    "ec2_faulted": set(),  # ids that already answered NotFound once
    "created_at": {},  # ("cluster"|"fargateprofile", region, id) -> creation time
    "nat_released": {},  # allocation id -> when its NAT gateway was deleted
    "foreign_clusters": set(),  # (region, name) of clusters the caller may not touch
}

ROUTES = []
# Functions (region, cluster name, DescribeCluster body) -> body that plugins add to change how a
# cluster is shown (e.g. shim_eks_auth.py points a cluster's endpoint at a real kube-apiserver).
CLUSTER_VIEWS = []


def route(handler):
    """Adds a route: handler(Request) returns a WSGI response triple or None to pass on."""
    ROUTES.append(handler)
    return handler


def strict(key):
    return CONFIG["strict"] and bool(CONFIG.get(key))


class Request:
    """One request, its body read once (and put back for moto)."""

    def __init__(self, environ):
        self.environ = environ
        self.method = environ["REQUEST_METHOD"]
        # The raw path: principal ARNs arrive percent-encoded and contain '/' once decoded.
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
        self.path, _, self.query_string = raw.partition("?")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(self.body)
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scope = re.search(r"Credential=([^/]+)/\d+/([^/]+)/([^/]+)/", auth)
        self.access_key, self.region, self.service = scope.groups() if scope else ("", "us-east-1", "")
        self.params = {}
        if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", "") or self.query_string:
            form = parse_qs(self.query_string) if self.query_string else {}
            if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
                form.update(parse_qs(self.body.decode()))
            self.params = {k: v[0] for k, v in form.items()}
        self.action = self.params.get("Action")

    def json(self):
        return json.loads(self.body or b"{}")

    def forward(self):
        """moto's answer as (status, headers, body)."""
        self.environ["wsgi.input"] = io.BytesIO(self.body)
        captured = {}
        chunks = []

        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return chunks.append

        result = MOTO(self.environ, start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            if hasattr(result, "close"):
                result.close()
        return captured["status"], captured["headers"], b"".join(chunks)


def respond(status, headers, body):
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    return status, headers + [("Content-Length", str(len(body)))], body


def reply_json(status, body, error_type=None):
    headers = [("Content-Type", "application/json")]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return respond(f"{status} {'OK' if status < 400 else 'Error'}", headers, json.dumps(body).encode())


def reply_xml(status, body):
    return respond(f"{status} {'OK' if status < 400 else 'Error'}", [("Content-Type", "text/xml")], body.encode())


def ec2_error(code, message):
    return reply_xml(
        400,
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error></Errors><RequestID>glrunner-shim</RequestID></Response>",
    )


def iam_backend(region):
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    return iam_backends[ACCOUNT][get_partition(region)]


def eks_backend(region):
    from moto.eks.models import eks_backends

    return eks_backends[ACCOUNT][region]


def ec2_backend(region):
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT][region]


def age(created):
    return time.time() - created


# ---------------------------------------------------------------------------------------------
# Control endpoints


@route
def control(req):
    if req.path == "/glrunner-shim/config":
        if req.method == "POST":
            with LOCK:
                CONFIG.update(req.json())
                apply_zone_strictness()
        return reply_json(200, CONFIG)
    if req.path == "/moto-api/reset" and req.method == "POST":
        with LOCK:
            STATE["eks"].clear()
            STATE["ec2_created"].clear()
            STATE["ec2_faulted"].clear()
            STATE["created_at"].clear()
            STATE["nat_released"].clear()
            STATE["foreign_clusters"].clear()
        return None
    if req.path == "/glrunner-shim/foreign-clusters":
        return foreign_clusters(req)
    return None


# ---------------------------------------------------------------------------------------------
# Availability zones: a Local Zone, and an account whose us-east-1a is the zone ID EKS refuses.

EKS_REFUSED_ZONE_IDS = {"use1-az3", "usw1-az2", "cac1-az3"}
LOCAL_ZONES = {
    "us-east-1": ("us-east-1-bos-1a", "use1-bos1-az1"),
    "us-west-2": ("us-west-2-lax-1a", "usw2-lax1-az1"),
}
ZONE_REMAP = {"us-east-1": {"us-east-1a": "use1-az3", "us-east-1e": "use1-az6"}}
ORIGINAL_ZONE_IDS = {}


def apply_zone_strictness():
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend, Zone

    on = strict("zones")
    zones = RegionsAndZonesBackend.zones
    for region, (name, zone_id) in LOCAL_ZONES.items():
        listed = [z for z in zones.get(region, []) if z.name == name]
        if on and not listed:
            zones[region].append(Zone(region_name=region, name=name, zone_id=zone_id, zone_type="local-zone"))
        if not on:
            zones[region] = [z for z in zones.get(region, []) if z.name != name]
    for region, remap in ZONE_REMAP.items():
        for zone in zones.get(region, []):
            if zone.name in remap:
                ORIGINAL_ZONE_IDS.setdefault(zone.name, zone.zone_id)
                zone.zone_id = remap[zone.name] if on else ORIGINAL_ZONE_IDS[zone.name]


def zone_of(region, name):
    for zone in ec2_backend(region).describe_availability_zones():
        if zone.name == name:
            return zone
    return None


def eks_refuses(zone):
    return zone is None or zone.zone_type != "availability-zone" or zone.zone_id in EKS_REFUSED_ZONE_IDS


# ---------------------------------------------------------------------------------------------
# EC2 eventual consistency

EC2_CREATES = {
    "CreateVpc": "vpcId",
    "CreateInternetGateway": "internetGatewayId",
    "AllocateAddress": "allocationId",
    "CreateRouteTable": "routeTableId",
    "CreateSubnet": "subnetId",
}
EC2_USES = {
    "ModifyVpcAttribute": ["VpcId"],
    "CreateSubnet": ["VpcId"],
    "AttachInternetGateway": ["InternetGatewayId"],
    "CreateNatGateway": ["AllocationId"],
    "CreateRoute": ["RouteTableId"],
    "AssociateRouteTable": ["RouteTableId"],
}
NOT_FOUND = {
    "vpc-": ("InvalidVpcID.NotFound", "vpc"),
    "igw-": ("InvalidInternetGatewayID.NotFound", "internetGateway"),
    "eipalloc-": ("InvalidAllocationID.NotFound", "allocation"),
    "rtb-": ("InvalidRouteTableID.NotFound", "routeTable"),
    "subnet-": ("InvalidSubnetID.NotFound", "subnet"),
}


@route
def ec2_consistency(req):
    if req.service != "ec2" or not req.action:
        return None
    if strict("ec2_consistency_s"):
        with LOCK:
            for param in EC2_USES.get(req.action, []):
                ident = req.params.get(param, "")
                created = STATE["ec2_created"].get(ident)
                if created is None or ident in STATE["ec2_faulted"] or age(created) > CONFIG["ec2_consistency_s"]:
                    continue
                STATE["ec2_faulted"].add(ident)
                for prefix, (code, noun) in NOT_FOUND.items():
                    if ident.startswith(prefix):
                        return ec2_error(code, f"The {noun} ID '{ident}' does not exist")
    field = EC2_CREATES.get(req.action)
    if field is None:
        return None
    status, headers, body = req.forward()
    found = re.search(rf"<{field}>([^<]+)</{field}>", body.decode(errors="replace"))
    if status.startswith("200") and found:
        with LOCK:
            STATE["ec2_created"][found.group(1)] = time.time()
    return respond(status, headers, body)


# ---------------------------------------------------------------------------------------------
# EC2: an Elastic IP cannot be released for a while after its NAT gateway was deleted.
#
# Right after DeleteNatGateway, and for a while even after DescribeNatGateways says `deleted`,
# ReleaseAddress of the gateway's address answers AuthFailure "You do not have permission to
# access the specified resource." although the caller may release it: reported in
# terraform-aws-modules/terraform-aws-vpc#64 (the first `terraform destroy` leaves every NAT EIP),
# hashicorp/terraform-provider-aws#13763 (intermittent AuthFailure on aws_eip destroy) and
# eformat/sno-for-100#9 (still there after waiting for the NAT gateway to be deleted). moto
# deletes a NAT gateway at once, so the window starts at DeleteNatGateway.

AUTH_FAILURE = "You do not have permission to access the specified resource."


@route
def nat_eip_release(req):
    if req.service != "ec2" or req.action not in ("DeleteNatGateway", "ReleaseAddress"):
        return None
    if req.action == "DeleteNatGateway":
        nat_id = req.params.get("NatGatewayId", "")
        with LOCK:
            nat = ec2_backend(req.region).nat_gateways.get(nat_id)
            allocations = [a.get("allocationId") for a in (nat.address_set if nat else []) if a.get("allocationId")]
        status, headers, body = req.forward()
        if status.startswith("200"):
            with LOCK:
                for allocation in allocations:
                    STATE["nat_released"][allocation] = time.time()
        return respond(status, headers, body)
    allocation = req.params.get("AllocationId", "")
    with LOCK:
        released = STATE["nat_released"].get(allocation)
    if strict("eip_auth_failure_s") and released is not None and age(released) < CONFIG["eip_auth_failure_s"]:
        return ec2_error("AuthFailure", AUTH_FAILURE)
    return None


# ---------------------------------------------------------------------------------------------
# STS: an unknown caller is an IAM user, as on AWS.


@route
def caller_identity(req):
    if req.service != "sts" or req.action != "GetCallerIdentity" or not strict("principals"):
        return None
    status, headers, body = req.forward()
    text = body.decode()
    made_up = f"arn:aws:sts::{ACCOUNT}:user/moto"
    if made_up in text:
        backend = iam_backend(req.region)
        with LOCK:
            if "moto" not in backend.users:
                backend.create_user(req.region, "moto")
        text = text.replace(made_up, f"arn:aws:iam::{ACCOUNT}:user/moto")
    return respond(status, headers, text.encode())


def principal_for_access_key(region, access_key):
    """The IAM principal (ARN with its path) behind an access key, as EKS's authenticator maps a
    token's caller: an assumed-role session is its role (aws-iam-authenticator canonicalises the
    STS assumed-role ARN to the role; the EKS access entry names the role with its path), an IAM
    user's key is that user, any other key is the IAM user `moto` (see caller_identity)."""
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    assumed = sts_backends[ACCOUNT][get_partition(region)].get_assumed_role_from_access_key(access_key)
    if assumed is not None:
        # arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION
        name = assumed.arn.split(":assumed-role/", 1)[-1].split("/", 1)[0]
        try:
            return iam_backend(region).get_role(name).arn
        except Exception:
            return f"arn:{get_partition(region)}:iam::{ACCOUNT}:role/{name}"
    user = iam_backend(region).get_user_from_access_key_id(access_key)
    if user is not None:
        return user.arn
    return f"arn:{get_partition(region)}:iam::{ACCOUNT}:user/moto"


# ---------------------------------------------------------------------------------------------
# Shared accounts: clusters of other teams that the caller may list but not describe.
#
# ListClusters is authorised on `*` and lists every cluster of the Region; DescribeCluster and
# every call under a cluster are authorised on the cluster's ARN, so an IAM policy scoped to
# glrunner's own clusters (`arn:aws:eks:*:*:cluster/<stack>`) answers AccessDeniedException for
# the others (EKS service authorization reference: ListClusters has no resource type,
# DescribeCluster has `cluster`).

CLUSTER_PATH = re.compile(r"^/clusters/(?P<cluster>[^/]+)(?:/.*)?$")


def foreign_clusters(req):
    if req.method == "POST":
        body = req.json()
        region, name = body.get("region", "us-east-1"), body["name"]
        with LOCK:
            backend = eks_backend(region)
            if name not in backend.clusters:
                backend.create_cluster(
                    name=name,
                    role_arn=f"arn:aws:iam::{ACCOUNT}:role/{name}-team-role",
                    resources_vpc_config={"subnetIds": [], "endpointPublicAccess": True},
                    tags={"team": "someone-else"},
                )
            STATE["foreign_clusters"].add((region, name))
    elif req.method == "DELETE":
        with LOCK:
            for region, name in STATE["foreign_clusters"]:
                eks_backend(region).clusters.pop(name, None)
            STATE["foreign_clusters"].clear()
    with LOCK:
        return reply_json(200, sorted(f"{r}/{n}" for r, n in STATE["foreign_clusters"]))


@route
def foreign_cluster_denied(req):
    if req.service != "eks":
        return None
    m = CLUSTER_PATH.match(req.path)
    if not m:
        return None
    name = unquote(m.group("cluster"))
    with LOCK:
        foreign = (req.region, name) in STATE["foreign_clusters"]
    if not foreign:
        return None
    caller = principal_for_access_key(req.region, req.access_key)
    arn = f"arn:aws:eks:{req.region}:{ACCOUNT}:cluster/{name}"
    return reply_json(
        403,
        {"message": f"User: {caller} is not authorized to perform: eks:DescribeCluster on resource: {arn}"},
        "AccessDeniedException",
    )


# ---------------------------------------------------------------------------------------------
# EKS: roles, zones and creation delay on CreateCluster / CreateFargateProfile.

ROLE_NOT_ASSUMABLE = "Role with arn: {arn}, could not be assumed because it does not exist or the trusted entity is not correct"
FARGATE_ROLE_BAD = "Misconfigured PodExecutionRole Trust Property; Please add the eks-fargate-pods.amazonaws.com Service Principal"


def role_by_arn(region, arn):
    try:
        return iam_backend(region).get_role_by_arn(arn)
    except Exception:
        return None


def trusts(role, service):
    try:
        doc = json.loads(unquote(role.assume_role_policy_document))
    except (TypeError, ValueError):
        return False
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        services = statement.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") == "Allow" and service in services:
            return True
    return False


def role_age(role):
    created = role.create_date
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()


CLUSTERS = re.compile(r"^/clusters$")
PROFILES = re.compile(r"^/clusters/(?P<cluster>[^/]+)/fargate-profiles$")
CLUSTER = re.compile(r"^/clusters/(?P<cluster>[^/]+)$")
PROFILE = re.compile(r"^/clusters/(?P<cluster>[^/]+)/fargate-profiles/(?P<name>[^/]+)$")


@route
def eks_create(req):
    if req.service != "eks" or req.method != "POST":
        return None
    if CLUSTERS.match(req.path):
        body = req.json()
        if strict("iam_propagation_s"):
            arn = body.get("roleArn", "")
            role = role_by_arn(req.region, arn)
            if role is None or not trusts(role, "eks.amazonaws.com") or role_age(role) < CONFIG["iam_propagation_s"]:
                return reply_json(400, {"message": ROLE_NOT_ASSUMABLE.format(arn=arn)}, "InvalidParameterException")
            if not any(p.endswith("/AmazonEKSClusterPolicy") for p in role.managed_policies):
                return reply_json(
                    400,
                    {"message": "The provided role doesn't have the Amazon EKS Managed Policies associated with it. Please ensure the following policy is attached: arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"},
                    "InvalidParameterException",
                )
        if strict("zones"):
            refused = []
            for subnet_id in body.get("resourcesVpcConfig", {}).get("subnetIds", []):
                try:
                    name = ec2_backend(req.region).get_subnet(subnet_id).availability_zone
                except Exception:
                    continue
                if eks_refuses(zone_of(req.region, name)):
                    refused.append(name)
            if refused:
                valid = sorted(z.name for z in ec2_backend(req.region).describe_availability_zones() if not eks_refuses(z))
                cluster = body.get("name", "")
                return reply_json(
                    400,
                    {
                        "message": f"Cannot create cluster '{cluster}' because {', '.join(refused)}, the targeted availability zone, does not currently have sufficient capacity to support the cluster. Retry and choose from these availability zones: {', '.join(valid)}",
                        "clusterName": cluster,
                        "validZones": valid,
                    },
                    "UnsupportedAvailabilityZoneException",
                )
        status, headers, out = req.forward()
        if status.startswith("200"):
            with LOCK:
                STATE["created_at"][("cluster", req.region, body.get("name"))] = time.time()
        return respond(status, headers, rewrite_status(out, "cluster", ("cluster", req.region, body.get("name"))))
    m = PROFILES.match(req.path)
    if m:
        body = req.json()
        cluster = unquote(m.group("cluster"))
        role_arn = body.get("podExecutionRoleArn", "")
        if strict("role_paths") and role_has_path(role_arn):
            # EKS User Guide, "Get started with AWS Fargate for your cluster", step 4 (latest/ug/
            # nodes/fargate-getting-started.adoc in awsdocs/amazon-eks-user-guide): "The role ARN
            # can't include a path other than /". The guide does not say how EKS fails otherwise
            # (the message below is the shim's, not EKS's); refusing the create is the side that
            # cannot lose money: nothing is billed for a refused profile, while a profile whose
            # pods never start leaves the control plane, NAT gateway and EIP billing.
            return reply_json(
                400,
                {"message": f"The Pod execution role ARN can't include a path other than /: {role_arn}"},
                "InvalidParameterException",
            )
        if strict("iam_propagation_s"):
            role = role_by_arn(req.region, role_arn)
            if role is None or not trusts(role, "eks-fargate-pods.amazonaws.com") or role_age(role) < CONFIG["iam_propagation_s"]:
                return reply_json(400, {"message": FARGATE_ROLE_BAD}, "InvalidParameterException")
        status, headers, out = req.forward()
        key = ("fargateprofile", req.region, f"{cluster}/{body.get('fargateProfileName')}")
        if status.startswith("200"):
            with LOCK:
                STATE["created_at"][key] = time.time()
                add_fargate_access_entry(req.region, cluster, role_arn)
        return respond(status, headers, rewrite_status(out, "fargateProfile", key))
    return None


def role_has_path(arn):
    """Whether an IAM role ARN has a path other than / (arn:aws:iam::1:role/a/b/name)."""
    resource = arn.split(":", 5)[-1]
    return resource.startswith("role/") and "/" in resource[len("role/"):]


def add_fargate_access_entry(region, cluster, role_arn):
    """The access entry EKS makes for a Fargate profile's pod execution role on a cluster that
    authenticates with access entries: type FARGATE_LINUX, username system:node:{{SessionName}}
    (EKS User Guide, "Grant IAM users access to Kubernetes with EKS access entries", the type and
    username tables). It carries none of glrunner's tags, and EKS does not remove it with the
    profile (aws/containers-roadmap#2441); it goes with the cluster. Caller holds LOCK."""
    state = STATE["eks"].setdefault((region, cluster), {"addons": {}, "access-entries": {}})
    entries = state["access-entries"]
    if role_arn in entries:
        return
    now = time.time()
    entries[role_arn] = {
        "clusterName": cluster, "principalArn": role_arn, "type": "FARGATE_LINUX",
        "kubernetesGroups": ["system:node-proxier"], "username": "system:node:{{SessionName}}",
        "accessEntryArn": f"arn:aws:eks:{region}:{ACCOUNT}:access-entry/{cluster}/{len(entries)}",
        "createdAt": now, "modifiedAt": now, "tags": {}, "_policies": {},
    }


def still_creating(key):
    created = STATE["created_at"].get(key)
    return created is not None and CONFIG["creation_delay_s"] > 0 and age(created) < CONFIG["creation_delay_s"]


def rewrite_status(body, field, key):
    """Shows a young resource as CREATING while the creation delay runs."""
    if not still_creating(key):
        return body
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if isinstance(doc.get(field), dict):
        doc[field]["status"] = "CREATING"
    return json.dumps(doc).encode()


@route
def eks_describe(req):
    if req.service != "eks" or req.method != "GET":
        return None
    m = CLUSTER.match(req.path)
    if m:
        name = unquote(m.group("cluster"))
        status, headers, out = req.forward()
        out = rewrite_status(out, "cluster", ("cluster", req.region, name))
        for view in CLUSTER_VIEWS:
            out = view(req.region, name, out)
        return respond(status, headers, out)
    m = PROFILE.match(req.path)
    if m:
        key = ("fargateprofile", req.region, f"{unquote(m.group('cluster'))}/{unquote(m.group('name'))}")
        status, headers, out = req.forward()
        return respond(status, headers, rewrite_status(out, "fargateProfile", key))
    m = PROFILES.match(req.path)
    if m and strict("principals"):
        # moto answers HTTP 500 for a missing cluster; EKS answers ClientException.
        cluster = unquote(m.group("cluster"))
        if cluster not in eks_backend(req.region).clusters:
            return reply_json(400, {"message": f"No cluster found for name: {cluster}."}, "ClientException")
    return None


# ---------------------------------------------------------------------------------------------
# EKS add-ons and access entries (moto has neither).

ADDONS_AND_ENTRIES = re.compile(
    r"^/clusters/(?P<cluster>[^/]+)/(?P<kind>addons|access-entries)(?:/(?P<name>[^/]+))?(?P<policies>/access-policies)?$"
)


def principal_exists(region, arn):
    if role_by_arn(region, arn) is not None:
        return True
    backend = iam_backend(region)
    return any(user.arn == arn for user in backend.users.values())


@route
def addons_and_access_entries(req):
    m = ADDONS_AND_ENTRIES.match(req.path)
    if not m:
        return None
    region = req.region
    method = req.method
    cluster = unquote(m.group("cluster"))
    kind = m.group("kind")
    name = unquote(m.group("name")) if m.group("name") else None
    body = req.json() if req.body else {}
    key = (region, cluster)
    with LOCK:
        if cluster not in eks_backend(region).clusters:
            STATE["eks"].pop(key, None)
            return reply_json(404, {"message": f"No cluster found for name: {cluster}."}, "ResourceNotFoundException")
        state = STATE["eks"].setdefault(key, {"addons": {}, "access-entries": {}})
        items = state[kind]
        now = time.time()
        if m.group("policies"):
            entry = items.get(name)
            if entry is None:
                return reply_json(404, {"message": f"access entry {name} not found"}, "ResourceNotFoundException")
            if method == "POST":
                policy = {"policyArn": body.get("policyArn"), "accessScope": body.get("accessScope", {}), "associatedAt": now, "modifiedAt": now}
                entry["_policies"][policy["policyArn"]] = policy
                return reply_json(200, {"clusterName": cluster, "principalArn": name, "associatedAccessPolicy": policy})
            # ListAssociatedAccessPolicies pages: maxResults (1-100, default 100) and nextToken
            # (EKS API reference, ListAssociatedAccessPolicies).
            query = parse_qs(req.query_string)
            size = int((query.get("maxResults") or [CONFIG["access_policies_page_size"]])[0])
            start = int((query.get("nextToken") or ["0"])[0])
            policies = list(entry["_policies"].values())
            page = {"clusterName": cluster, "principalArn": name, "associatedAccessPolicies": policies[start:start + size]}
            if start + size < len(policies):
                page["nextToken"] = str(start + size)
            return reply_json(200, page)
        if name is None and method == "GET":
            listing = "addons" if kind == "addons" else "accessEntries"
            return reply_json(200, {listing: sorted(items)})
        if name is None and method == "POST":
            if kind == "addons":
                name = body["addonName"]
                if name in items:
                    return reply_json(409, {"message": "Addon already exists."}, "ResourceInUseException")
                items[name] = {
                    "addonName": name, "clusterName": cluster, "status": "ACTIVE", "addonVersion": "v1.11.4-eksbuild.1",
                    "health": {"issues": []}, "addonArn": f"arn:aws:eks:{region}:{ACCOUNT}:addon/{cluster}/{name}/0",
                    "createdAt": now, "modifiedAt": now, "tags": body.get("tags", {}),
                    "configurationValues": body.get("configurationValues", ""),
                }
                STATE["created_at"][("addon", region, f"{cluster}/{name}")] = now
                return reply_json(200, {"addon": addon_view(region, cluster, items[name])})
            name = body["principalArn"]
            if strict("principals") and not principal_exists(region, name):
                return reply_json(400, {"message": "The specified principalArn is invalid: invalid principal"}, "InvalidParameterException")
            if name in items:
                return reply_json(409, {"message": "The specified access entry resource is already in use on this cluster."}, "ResourceInUseException")
            items[name] = {
                "clusterName": cluster, "principalArn": name, "kubernetesGroups": [], "type": body.get("type", "STANDARD"),
                "accessEntryArn": f"arn:aws:eks:{region}:{ACCOUNT}:access-entry/{cluster}/{len(items)}", "createdAt": now,
                "modifiedAt": now, "tags": body.get("tags", {}), "username": name, "_policies": {},
            }
            return reply_json(200, {"accessEntry": public(items[name])})
        item = items.get(name)
        if item is None:
            return reply_json(404, {"message": f"{kind} {name} not found in cluster {cluster}"}, "ResourceNotFoundException")
        field = "addon" if kind == "addons" else "accessEntry"
        if method == "DELETE":
            del items[name]
            if kind == "addons":
                item = dict(item, status="DELETING")
                return reply_json(200, {field: item})
            return reply_json(200, {})
        if kind == "addons":
            return reply_json(200, {field: addon_view(region, cluster, item)})
        return reply_json(200, {field: public(item)})


def addon_view(region, cluster, item):
    if still_creating(("addon", region, f"{cluster}/{item['addonName']}")):
        return dict(item, status="CREATING")
    return item


def public(item):
    return {k: v for k, v in item.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------


def app(environ, start_response):
    req = Request(environ)
    for handler in ROUTES:
        answer = handler(req)
        if answer is not None:
            status, headers, body = answer
            start_response(status, headers)
            return [body]
    req.environ["wsgi.input"] = io.BytesIO(req.body)
    return MOTO(environ, start_response)


def load_plugins():
    """Imports every scripts/shim_*.py and calls its register(shim)."""
    here = os.path.dirname(os.path.abspath(__file__))
    shim = sys.modules[__name__]
    for path in sorted(glob.glob(os.path.join(here, "shim_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "register"):
            module.register(shim)


if __name__ == "__main__":
    sys.modules.setdefault("moto_shim", sys.modules[__name__])
    apply_zone_strictness()
    load_plugins()
    run_simple(sys.argv[1], int(sys.argv[2]), app, threaded=True)
