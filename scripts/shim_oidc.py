"""EKS's OIDC issuer, one per cluster: what IRSA and glrunner's IAM OIDC provider depend on.
Test support only; loaded by moto_shim.py (every scripts/shim_*.py is, through its
`register(shim)`).

moto 5.2.1 answers DescribeCluster with `identity.oidc.issuer`, but the same made-up issuer
(`https://oidc.eks.<region>.amazonaws.com/id/` and ten random characters drawn once per server)
for every cluster, so two clusters would share one IAM OIDC provider. EKS gives each cluster
its own issuer: EKS API Reference, DescribeCluster, response `cluster.identity.oidc.issuer`
("The issuer URL for the OIDC identity provider", data types `Identity` -> `OIDC` -> `issuer`),
shaped `https://oidc.eks.<region-code>.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE`
(EKS User Guide, "Create an IAM OIDC provider for your cluster"): 32 upper-case hex characters.
This view rewrites the issuer of each cluster to one derived from the cluster's ARN and creation
time, so it is stable for one cluster and new for a cluster re-created under the same name.

The field path is checked against botocore's EKS service model at start: the shim refuses to
load if the model no longer has `Cluster.identity.oidc.issuer`.
"""

import hashlib
import json

SHIM = None


def check_service_model():
    """The path this view writes exists in botocore's model of DescribeCluster's answer."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("eks")
    output = model.operation_model("DescribeCluster").output_shape
    cluster = output.members["cluster"]
    identity = cluster.members["identity"]
    oidc = identity.members["oidc"]
    issuer = oidc.members["issuer"]
    assert issuer.type_name == "string", issuer.type_name


def issuer_of(region, cluster):
    seed = f"{cluster.get('arn', '')}|{cluster.get('createdAt', '')}".encode()
    digest = hashlib.sha256(seed).hexdigest()[:32].upper()
    return f"https://oidc.eks.{region}.amazonaws.com/id/{digest}"


def cluster_view(region, name, body):
    """DescribeCluster: this cluster's own issuer."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    cluster = doc.get("cluster")
    if not isinstance(cluster, dict):
        return body
    identity = cluster.setdefault("identity", {})
    oidc = identity.setdefault("oidc", {})
    oidc["issuer"] = issuer_of(region, cluster)
    return json.dumps(doc).encode()


def register(shim):
    global SHIM
    SHIM = shim
    check_service_model()
    shim.CLUSTER_VIEWS.append(cluster_view)
