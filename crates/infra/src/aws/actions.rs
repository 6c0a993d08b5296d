//! Every AWS action glrunner calls, as IAM action names, kept next to the code that calls them.
//!
//! `doctor`'s permissions check simulates this list with `iam:SimulatePrincipalPolicy` for the
//! caller. A test reads this module's siblings (every `self.<client>.<operation>(` call and
//! every operation handed to a call macro) and fails when a call is missing here, so a new
//! call cannot be forgotten.

/// The IAM actions of every AWS API call glrunner makes (service prefix + operation name).
pub const CALLED_ACTIONS: &[&str] = &[
    // Network (aws-sdk-ec2).
    "ec2:AllocateAddress",
    "ec2:AssociateRouteTable",
    "ec2:AttachInternetGateway",
    "ec2:CreateInternetGateway",
    "ec2:CreateNatGateway",
    "ec2:CreateRoute",
    "ec2:CreateRouteTable",
    "ec2:CreateSubnet",
    "ec2:CreateVpc",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteNatGateway",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSubnet",
    "ec2:DeleteVpc",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ec2:DetachInternetGateway",
    "ec2:DisassociateRouteTable",
    "ec2:ModifyVpcAttribute",
    "ec2:ReleaseAddress",
    // Cluster (aws-sdk-eks).
    "eks:AssociateAccessPolicy",
    "eks:CreateAccessEntry",
    "eks:CreateAddon",
    "eks:CreateCluster",
    "eks:CreateFargateProfile",
    "eks:DeleteAccessEntry",
    "eks:DeleteAddon",
    "eks:DeleteCluster",
    "eks:DeleteFargateProfile",
    "eks:DescribeAccessEntry",
    "eks:DescribeAddon",
    "eks:DescribeCluster",
    "eks:DescribeFargateProfile",
    "eks:ListAccessEntries",
    "eks:ListAddons",
    "eks:ListAssociatedAccessPolicies",
    "eks:ListClusters",
    "eks:ListFargateProfiles",
    // Roles (aws-sdk-iam).
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:GetRole",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:ListRoles",
    "iam:SimulatePrincipalPolicy",
    // Identity (aws-sdk-sts).
    "sts:GetCallerIdentity",
    // Quotas and prices, read by the preflight (aws-sdk-servicequotas, aws-sdk-pricing).
    "servicequotas:GetServiceQuota",
    "servicequotas:GetAWSDefaultServiceQuota",
    "pricing:GetProducts",
];

/// Permissions AWS checks without a call of that name: `eks:CreateCluster` and
/// `eks:CreateFargateProfile` hand roles to EKS (`iam:PassRole`), and EKS creates its
/// service-linked roles on first use in an account.
pub const IMPLIED_ACTIONS: &[&str] = &["iam:PassRole", "iam:CreateServiceLinkedRole"];

/// What `provision`, `teardown` and the flow need: [`CALLED_ACTIONS`] plus [`IMPLIED_ACTIONS`],
/// without the read-only calls `doctor` itself makes to check the account.
pub fn required_actions() -> Vec<&'static str> {
    CALLED_ACTIONS
        .iter()
        .chain(IMPLIED_ACTIONS)
        .copied()
        .filter(|a| !DOCTOR_ONLY_ACTIONS.contains(a))
        .collect()
}

/// Calls only the preflight makes (it reports their denial itself, as a warning).
pub const DOCTOR_ONLY_ACTIONS: &[&str] = &[
    "iam:SimulatePrincipalPolicy",
    "servicequotas:GetServiceQuota",
    "servicequotas:GetAWSDefaultServiceQuota",
    "pricing:GetProducts",
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The field name of each SDK client in this module's siblings, and its IAM service prefix.
    const CLIENTS: &[(&str, &str)] = &[
        ("ec2", "ec2"),
        ("eks", "eks"),
        ("iam", "iam"),
        ("sts", "sts"),
        ("quotas", "servicequotas"),
        ("pricing", "pricing"),
    ];

    fn pascal(snake: &str) -> String {
        snake
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn ident_at(s: &str) -> &str {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(s.len());
        &s[..end]
    }

    /// Every `(service prefix, operation)` called in `source` (whitespace removed first, so
    /// calls split over lines count): direct calls, and operations passed to a macro whose
    /// body calls `.<client>.$op(`.
    fn calls_in(source: &str) -> BTreeSet<String> {
        let code: String = source
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<String>()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut found = BTreeSet::new();
        for (field, prefix) in CLIENTS {
            let needle = format!(".{field}.");
            for (i, _) in code.match_indices(&needle) {
                let op = ident_at(&code[i + needle.len()..]);
                if op.is_empty() || !code[i + needle.len() + op.len()..].starts_with('(') {
                    continue;
                }
                if let Some(param) = op.strip_prefix('$') {
                    // A macro: find its name, then the operation of each invocation.
                    let head = &code[..i];
                    let Some(def) = head.rfind("macro_rules!") else {
                        continue;
                    };
                    let name = ident_at(&head[def + "macro_rules!".len()..]);
                    let invocation = format!("{name}!(");
                    for (j, _) in code.match_indices(&invocation) {
                        let args = &code[j + invocation.len()..];
                        let args = args
                            .strip_prefix("self.")
                            .or_else(|| args.strip_prefix("$self."))
                            .unwrap_or(args);
                        let called = ident_at(args);
                        if called != param && !called.is_empty() {
                            found.insert(format!("{prefix}:{}", pascal(called)));
                        }
                    }
                } else {
                    found.insert(format!("{prefix}:{}", pascal(op)));
                }
            }
        }
        found
    }

    #[test]
    fn the_list_covers_every_call_in_the_aws_backend() {
        // The checkout's directory at run time: the build cache is shared between checkouts, so this
        // binary may have been built in another one.
        let dir = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("src/aws");
        let mut called = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("actions.rs") {
                called.extend(calls_in(&std::fs::read_to_string(&path).unwrap()));
            }
        }
        // Sanity: the scan sees the calls it must (direct, split over lines, and in macros).
        for sure in [
            "ec2:CreateVpc",
            "ec2:DescribeVpcs",
            "eks:ListAddons",
            "eks:ListAssociatedAccessPolicies",
            "sts:GetCallerIdentity",
        ] {
            assert!(called.contains(sure), "scan missed {sure}: {called:?}");
        }
        // IAM action names are case-insensitive (`GetAWSDefaultServiceQuota` is the SDK's
        // `get_aws_default_service_quota`).
        let called: BTreeSet<String> = called.iter().map(|a| a.to_lowercase()).collect();
        let listed: BTreeSet<String> = CALLED_ACTIONS.iter().map(|a| a.to_lowercase()).collect();
        assert_eq!(
            listed.len(),
            CALLED_ACTIONS.len(),
            "CALLED_ACTIONS has duplicates"
        );
        let missing: Vec<_> = called.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "AWS calls missing from CALLED_ACTIONS: {missing:?}"
        );
        let stale: Vec<_> = listed.difference(&called).collect();
        assert!(
            stale.is_empty(),
            "CALLED_ACTIONS lists actions nothing calls: {stale:?}"
        );
    }

    #[test]
    fn the_scan_finds_calls_split_over_lines_and_in_macros() {
        let source = r#"
            macro_rules! list_all { ($op:ident) => { self.eks.$op().send() }; }
            fn f(&self) {
                self.ec2
                    .create_vpc()     // a comment with .iam.get_role( in it
                    .send();
                list_all!(list_addons);
                self.quotas.get_service_quota().send();
            }
        "#;
        let found: Vec<_> = calls_in(source).into_iter().collect();
        assert_eq!(
            found,
            [
                "ec2:CreateVpc",
                "eks:ListAddons",
                "servicequotas:GetServiceQuota"
            ]
        );
    }

    #[test]
    fn required_actions_are_unique_and_include_pass_role() {
        let all = required_actions();
        let unique: BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        assert!(all.contains(&"iam:PassRole"));
        assert!(all.contains(&"eks:CreateCluster"));
        assert!(!all.contains(&"pricing:GetProducts"));
        for a in DOCTOR_ONLY_ACTIONS {
            assert!(CALLED_ACTIONS.contains(a), "{a}");
        }
    }
}
