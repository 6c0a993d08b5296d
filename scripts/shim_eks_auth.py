"""EKS authentication against a real kube-apiserver: what lets a cluster "created" in moto be
reached like a real EKS cluster. Test support only; loaded by moto_shim.py (every
scripts/shim_*.py is, through its `register(shim)`).

Two parts, as on EKS:

- Endpoint. `POST /glrunner-shim/eks-endpoints` with {"<cluster>": {"endpoint": "https://…",
  "ca": "<base64 PEM>"}} (keys merge; `GET` shows them) makes DescribeCluster of that cluster
  answer this endpoint and CA instead of moto's made-up ones, so glrunner's kubeconfig, kube-rs
  and helm reach the real apiserver.
- Authentication. `POST /glrunner-shim/tokenreview` is a Kubernetes token-review webhook
  (kube-apiserver `--authentication-token-webhook-config-file`, scripts/kube-apiserver.sh
  `--eks-webhook URL`) that plays aws-iam-authenticator plus EKS access entries: a
  `k8s-aws-v1.` token must be a base64url pre-signed STS GetCallerIdentity URL that signs the
  `x-k8s-aws-id` header and is at most 15 minutes old (settable, so a test can use seconds: the
  webhook path `/glrunner-shim/tokenreview/<SECONDS>` for one apiserver, scripts/kube-apiserver.sh
  `--eks-token-lifetime SECONDS`, or GLRUNNER_SHIM_EKS_TOKEN_LIFETIME for the shim); its caller is the IAM principal of the
  access key that signed it (`X-Amz-Credential`), as aws-iam-authenticator maps it: an
  assumed-role session is its role (with the role's path, as access entries name it), an IAM
  user's key is that user, an unknown key the IAM user `moto`; that principal is let in only when
  an access entry of a registered cluster names it. An entry with AmazonEKSClusterAdminPolicy
  maps to the group system:masters, as EKS does.

What is not modelled: the signature itself (moto does not check SigV4 either) and which of the
registered clusters the token names (the header value is signed but not carried in the URL), so
an access entry on any registered cluster lets its principal in.
"""

import base64
import datetime
import json
import os
import re
import threading
from urllib.parse import parse_qs, urlsplit

SHIM = None
LOCK = threading.Lock()
ENDPOINTS = {}  # cluster name -> {"endpoint": ..., "ca": ...}
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
TOKEN_PREFIX = "k8s-aws-v1."
# How long a token is accepted after its X-Amz-Date: aws-iam-authenticator pkg/token/token.go,
# `presignedURLExpiration = 15 * time.Minute` ("presigned STS urls are valid for 15 minutes after
# timestamp in x-amz-date"), checked in Verify: `if now.After(dateParam.Add(presignedURLExpiration))`
# -> "X-Amz-Date parameter is expired (15 minute expiration)". The `X-Amz-Expires=60` of the URL
# does not shorten it (same file: "IT IS IGNORED").
TOKEN_LIFETIME_S = int(os.environ.get("GLRUNNER_SHIM_EKS_TOKEN_LIFETIME") or 15 * 60)
REVIEW_PATH = re.compile(r"^/glrunner-shim/tokenreview(?:/(\d+))?$")


def cluster_view(region, name, body):
    """DescribeCluster: the registered endpoint and CA of this cluster."""
    with LOCK:
        target = ENDPOINTS.get(name)
    if target is None:
        return body
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    cluster = doc.get("cluster")
    if isinstance(cluster, dict):
        cluster["endpoint"] = target["endpoint"]
        cluster["certificateAuthority"] = {"data": target["ca"]}
    return json.dumps(doc).encode()


def caller_arn(credential):
    """The IAM principal behind the access key of a pre-signed request's X-Amz-Credential
    (`AKID/DATE/REGION/sts/aws4_request`): each caller is its own principal, never one shared user."""
    parts = credential.split("/")
    region = parts[2] if len(parts) > 2 and parts[2] else "us-east-1"
    with SHIM.LOCK:
        return SHIM.principal_for_access_key(region, parts[0])


def verify(token, lifetime=None):
    """(username, groups) for a valid token, or raises ValueError naming what is wrong. A token is
    refused once it is `lifetime` seconds old (TOKEN_LIFETIME_S unless the webhook path says)."""
    lifetime = TOKEN_LIFETIME_S if lifetime is None else lifetime
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError("not an EKS token (no k8s-aws-v1. prefix)")
    encoded = token[len(TOKEN_PREFIX):]
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if query.get("Action") != "GetCallerIdentity":
        raise ValueError("the pre-signed request is not sts:GetCallerIdentity")
    for key in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Signature", "X-Amz-SignedHeaders"):
        if not query.get(key):
            raise ValueError(f"the pre-signed request has no {key}")
    if "/sts/aws4_request" not in query["X-Amz-Credential"]:
        raise ValueError("the pre-signed request is not signed for sts")
    if "x-k8s-aws-id" not in query["X-Amz-SignedHeaders"].split(";"):
        raise ValueError("the pre-signed request does not sign x-k8s-aws-id")
    signed = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    age = (datetime.datetime.now(datetime.timezone.utc) - signed).total_seconds()
    if age > lifetime:
        raise ValueError(f"X-Amz-Date parameter is expired ({int(age)} s old, at most {lifetime} s)")
    arn = caller_arn(query["X-Amz-Credential"])
    with LOCK:
        clusters = set(ENDPOINTS)
    groups = None
    with SHIM.LOCK:
        for (region, cluster), state in SHIM.STATE["eks"].items():
            # A deleted cluster takes its access entries with it.
            live = cluster in clusters and cluster in SHIM.eks_backend(region).clusters
            entry = state["access-entries"].get(arn) if live else None
            if entry is None:
                continue
            groups = set(groups or ()) | set(entry.get("kubernetesGroups") or ())
            if ADMIN_POLICY in entry["_policies"]:
                groups.add("system:masters")
    if groups is None:
        raise ValueError(f"no access entry for {arn} on any cluster served by this apiserver")
    return arn, sorted(groups)


def control(req):
    if req.path == "/glrunner-shim/eks-endpoints":
        if req.method == "POST":
            with LOCK:
                ENDPOINTS.update(req.json())
        with LOCK:
            return SHIM.reply_json(200, ENDPOINTS)
    review_path = REVIEW_PATH.match(req.path)
    if review_path and req.method == "POST":
        review = req.json()
        lifetime = int(review_path.group(1)) if review_path.group(1) else None
        try:
            user, groups = verify((review.get("spec") or {}).get("token", ""), lifetime)
            status = {"authenticated": True, "user": {"username": user, "uid": user, "groups": groups}}
        except (ValueError, UnicodeDecodeError) as e:
            status = {"authenticated": False, "error": str(e)}
        return SHIM.reply_json(
            200, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}
        )
    return None


def register(shim):
    global SHIM
    SHIM = shim
    shim.route(control)
    shim.CLUSTER_VIEWS.append(cluster_view)
