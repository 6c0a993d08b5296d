//! Identity for jobs: which Kubernetes ServiceAccount a job pod runs as, rendered into the
//! Kubernetes executor's `service_account` and `service_account_overwrite_allowed`.
//!
//! On Fargate a pod has no instance metadata, so a job that calls AWS needs IAM Roles for Service
//! Accounts (IRSA): a ServiceAccount in the job namespace annotated
//! [`ROLE_ARN_ANNOTATION`] (created by [`crate::ServiceAccountInstaller`]) and the job pod running
//! as it. GitLab Runner's settings (docs `docs/executors/kubernetes/_index.md`, the
//! `[runners.kubernetes]` table; `common/config.go`, `KubernetesConfig.ServiceAccount`
//! `toml:"service_account"` and `ServiceAccountOverwriteAllowed`
//! `toml:"service_account_overwrite_allowed"`):
//!
//! - `service_account`: "Default service account job/executor pods use to talk to Kubernetes
//!   API" (empty: the namespace's `default` account, which has no role);
//! - `service_account_overwrite_allowed`: "Regular expression to validate the contents of the
//!   service account overwrite environment variable. When empty, it disables the service account
//!   overwrite feature." A job picks an account with the CI variable
//!   [`SERVICE_ACCOUNT_OVERWRITE_VARIABLE`] (`executors/kubernetes/overwrites.go`,
//!   `ServiceAccountOverwriteVariableName`), and the runner accepts it when
//!   `regexp.MatchString(regex, value)` holds (`overwriteRegexCheck` there): Go's *unanchored*
//!   match, so `deploy` admits `not-deploy-at-all` and any other account of the namespace.
//!
//! glrunner therefore renders, for the job accounts it created ([`JobIdentity::for_accounts`]):
//! one account → `service_account = "<it>"` (every job has that identity); more than one → no
//! default (a job that names no role gets none: least privilege) and
//! `service_account_overwrite_allowed = "^(a|b)$"`, the names escaped. Validation
//! ([`JobIdentity::issues`]) proves what a regex admits by parsing it (regex-syntax, whose syntax
//! agrees with Go's RE2 on the small subset accepted here: literals, escapes, groups,
//! alternation, `?`, `^`, `$`) and enumerating its language: it must be anchored at both ends,
//! finite, and admit only declared accounts.

use std::collections::BTreeSet;

use regex_syntax::hir::{Class, Hir, HirKind, Look};
use serde::{Deserialize, Serialize};

use crate::error::Invalid;
use crate::validate;

/// The annotation IRSA reads on a ServiceAccount: the IAM role its pods assume (EKS user guide,
/// "Assign IAM roles to Kubernetes service accounts").
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The CI variable a job sets to run as another ServiceAccount (gitlab-runner
/// `executors/kubernetes/overwrites.go`, `ServiceAccountOverwriteVariableName`).
pub const SERVICE_ACCOUNT_OVERWRITE_VARIABLE: &str = "KUBERNETES_SERVICE_ACCOUNT_OVERWRITE";

/// Most names a checked overwrite regex may admit (a bound on the enumeration).
const MAX_ADMITTED: usize = 256;

/// Markers for the anchors while enumerating (private-use characters, refused in patterns).
const START: char = '\u{E000}';
const END: char = '\u{E001}';

/// The executor's job-identity settings: the job ServiceAccounts glrunner created (the declared
/// set), the default one, and the overwrite regex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIdentity {
    /// The job ServiceAccounts that exist in the job namespace with a role (the declared set);
    /// the overwrite regex may admit these and no other.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// `service_account`: what a job runs as when it names none (`None`: the namespace's
    /// `default` account, no AWS identity).
    #[serde(default)]
    pub service_account: Option<String>,
    /// `service_account_overwrite_allowed` (`None`: no job may choose).
    #[serde(default)]
    pub overwrite_allowed: Option<String>,
}

impl JobIdentity {
    /// The settings for these job accounts: one → it is the default; more → no default and an
    /// anchored regex of exactly them ([`overwrite_regex`]); none → nothing set.
    pub fn for_accounts<I, S>(accounts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let accounts: Vec<String> = accounts.into_iter().map(Into::into).collect();
        match accounts.as_slice() {
            [] => Self::default(),
            [one] => Self {
                service_account: Some(one.clone()),
                overwrite_allowed: None,
                accounts,
            },
            many => Self {
                service_account: None,
                overwrite_allowed: Some(overwrite_regex(many)),
                accounts,
            },
        }
    }

    /// Whether nothing is set (the runner's defaults).
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.service_account.is_none()
            && self.overwrite_allowed.is_none()
    }

    /// Whether a job with these CI variables runs with an AWS identity: it names an admitted
    /// account in [`SERVICE_ACCOUNT_OVERWRITE_VARIABLE`], or the default account is a declared
    /// job account. `overwrite` is the variable's value, when the job sets it.
    pub fn job_has_identity(&self, overwrite: Option<&str>) -> bool {
        let declared = |name: &str| self.accounts.iter().any(|a| a == name);
        if let (Some(value), Some(regex)) =
            (overwrite.filter(|v| !v.is_empty()), &self.overwrite_allowed)
            && admitted_accounts(regex).is_ok_and(|set| set.contains(value))
        {
            return declared(value);
        }
        self.service_account.as_deref().is_some_and(declared)
    }

    /// Every problem, each naming the field (under `field`, e.g. `executor`) and the fix.
    pub fn issues(&self, field: &str) -> Vec<Invalid> {
        let mut issues = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, name) in self.accounts.iter().enumerate() {
            // ServiceAccount names are DNS-1123 subdomains (kubernetes
            // pkg/apis/core/validation/validation.go: ValidateServiceAccountName =
            // apimachineryvalidation.NameIsDNSSubdomain).
            issues.extend(
                validate::object_name(&format!("{field}.job_service_accounts[{i}]"), name).err(),
            );
            if !seen.insert(name.as_str()) {
                issues.push(Invalid::new(
                    format!("{field}.job_service_accounts[{i}]"),
                    format!("{name:?} is declared twice"),
                    "declare each job role once (--job-role NAME=POLICY_ARN)",
                ));
            }
        }
        if let Some(name) = &self.service_account {
            let f = format!("{field}.service_account");
            issues.extend(validate::object_name(&f, name).err());
            if !self.accounts.is_empty() && !self.accounts.contains(name) {
                issues.push(Invalid::new(
                    f,
                    format!(
                        "{name:?} is not one of the job service accounts {:?}",
                        self.accounts
                    ),
                    "use one of them, or add a --job-role for it",
                ));
            }
        }
        if let Some(regex) = &self.overwrite_allowed {
            let f = format!("{field}.service_account_overwrite_allowed");
            let fix = if self.accounts.is_empty() {
                "leave it unset: no job service account is declared (--job-role NAME=POLICY_ARN)"
                    .to_owned()
            } else {
                format!(
                    "use {:?}, which admits exactly the job service accounts",
                    overwrite_regex(&self.accounts)
                )
            };
            match admitted_accounts(regex) {
                Err(problem) => issues.push(Invalid::new(f, format!("{regex:?} {problem}"), fix)),
                Ok(admitted) => {
                    let outside: Vec<&String> = admitted
                        .iter()
                        .filter(|a| !self.accounts.contains(a))
                        .collect();
                    if !outside.is_empty() {
                        issues.push(Invalid::new(
                            f,
                            format!(
                                "{regex:?} admits {outside:?}, which {} not among the job service accounts {:?}",
                                if outside.len() == 1 { "is" } else { "are" },
                                self.accounts
                            ),
                            fix,
                        ));
                    }
                }
            }
        }
        issues
    }
}

/// The anchored regex admitting exactly `accounts`: `^(a|b)$`, each name escaped (a `.` in a
/// name matches only a `.`).
pub fn overwrite_regex<S: AsRef<str>>(accounts: &[S]) -> String {
    let names: Vec<String> = accounts
        .iter()
        .map(|a| regex_syntax::escape(a.as_ref()))
        .collect();
    format!("^({})$", names.join("|"))
}

/// The exact set of names `regex` admits under the runner's unanchored match, or why it cannot
/// be shown to be a finite set of names (it is unanchored, repeats without bound, uses a wide
/// class or syntax outside the subset shared with Go's RE2).
pub fn admitted_accounts(regex: &str) -> Result<BTreeSet<String>, String> {
    // The subset on which regex-syntax and Go's RE2 agree, and all a set of names needs.
    if let Some(c) = regex.chars().find(|c| {
        !(c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(
                c,
                '.' | '-' | '\\' | '|' | '(' | ')' | '^' | '$' | '?' | ':'
            ))
    }) {
        return Err(format!(
            "uses {c:?}: only names, `\\.`, groups, `|`, `?` and the anchors `^`/`$` are accepted"
        ));
    }
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(regex)
        .map_err(|e| format!("does not parse: {}", e.to_string().replace('\n', " ")))?;
    let strings = language(&hir)?;
    let mut admitted = BTreeSet::new();
    for s in strings {
        let rest = s.trim_start_matches(START);
        if rest.len() == s.len() {
            return Err("is not anchored at the start (`^`): the runner's unanchored match would admit any account containing it".into());
        }
        let core = rest.trim_end_matches(END);
        if core.len() == rest.len() {
            return Err("is not anchored at the end (`$`): the runner's unanchored match would admit any account starting with it".into());
        }
        if core.contains([START, END]) {
            return Err("has an anchor inside a name".into());
        }
        admitted.insert(core.to_owned());
    }
    Ok(admitted)
}

/// Every string `hir` matches, with [`START`]/[`END`] for the anchors.
fn language(hir: &Hir) -> Result<Vec<String>, String> {
    let too_many = || format!("admits more than {MAX_ADMITTED} names");
    match hir.kind() {
        HirKind::Empty => Ok(vec![String::new()]),
        HirKind::Literal(lit) => Ok(vec![
            String::from_utf8(lit.0.to_vec()).map_err(|_| "is not UTF-8".to_owned())?,
        ]),
        HirKind::Class(Class::Unicode(class)) => {
            let mut out = Vec::new();
            for range in class.iter() {
                for c in range.start()..=range.end() {
                    out.push(c.to_string());
                    if out.len() > MAX_ADMITTED {
                        return Err(too_many());
                    }
                }
            }
            Ok(out)
        }
        HirKind::Class(Class::Bytes(_)) => Err("uses a byte class".into()),
        HirKind::Look(Look::Start) => Ok(vec![START.to_string()]),
        HirKind::Look(Look::End) => Ok(vec![END.to_string()]),
        HirKind::Look(other) => Err(format!("uses the assertion {other:?}, not `^`/`$`")),
        HirKind::Repetition(rep) => {
            let Some(max) = rep.max else {
                return Err(
                    "repeats without bound (`*`, `+`), admitting names outside any list".into(),
                );
            };
            let sub = language(&rep.sub)?;
            let mut out = Vec::new();
            let mut power = vec![String::new()];
            for k in 0..=max {
                if k >= rep.min {
                    out.extend(power.iter().cloned());
                }
                power = product(&power, &sub).ok_or_else(too_many)?;
                if out.len() > MAX_ADMITTED {
                    return Err(too_many());
                }
            }
            Ok(out)
        }
        HirKind::Capture(cap) => language(&cap.sub),
        HirKind::Concat(subs) => {
            let mut acc = vec![String::new()];
            for sub in subs {
                acc = product(&acc, &language(sub)?).ok_or_else(too_many)?;
            }
            Ok(acc)
        }
        HirKind::Alternation(subs) => {
            let mut out = Vec::new();
            for sub in subs {
                out.extend(language(sub)?);
                if out.len() > MAX_ADMITTED {
                    return Err(too_many());
                }
            }
            Ok(out)
        }
    }
}

fn product(left: &[String], right: &[String]) -> Option<Vec<String>> {
    if left.len().saturating_mul(right.len()) > MAX_ADMITTED {
        return None;
    }
    Some(
        left.iter()
            .flat_map(|l| right.iter().map(move |r| format!("{l}{r}")))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn one_account_is_the_default_and_more_are_an_anchored_regex() {
        let one = JobIdentity::for_accounts(["deploy"]);
        assert_eq!(one.service_account.as_deref(), Some("deploy"));
        assert_eq!(one.overwrite_allowed, None);
        assert!(one.issues("executor").is_empty());

        let two = JobIdentity::for_accounts(["deploy", "read.only"]);
        assert_eq!(
            two.service_account, None,
            "no default identity with several roles"
        );
        assert_eq!(
            two.overwrite_allowed.as_deref(),
            Some(r"^(deploy|read\.only)$")
        );
        assert!(
            two.issues("executor").is_empty(),
            "{:?}",
            two.issues("executor")
        );
        assert!(JobIdentity::for_accounts(Vec::<String>::new()).is_empty());
    }

    /// The generated regex, matched the way the runner matches it (an unanchored search; Rust's
    /// `regex` and Go's RE2 agree on this syntax), admits each account and nothing else.
    #[test]
    fn the_generated_regex_admits_exactly_the_accounts_under_an_unanchored_match() {
        let accounts = ["deploy", "read.only", "s3-writer"];
        let regex = regex::Regex::new(&overwrite_regex(&accounts)).unwrap();
        for a in accounts {
            assert!(regex.is_match(a), "{a}");
        }
        for other in [
            "default",
            "deploy2",
            "my-deploy",
            "readxonly",
            "s3-writer-admin",
            "system:serviceaccount:other:deploy",
            "",
        ] {
            assert!(!regex.is_match(other), "{other} admitted");
        }
        assert_eq!(
            admitted_accounts(&overwrite_regex(&accounts)).unwrap(),
            set(&accounts)
        );
    }

    #[test]
    fn wrong_regexes_are_refused_naming_the_field_and_the_fix() {
        let declared = |regex: &str| JobIdentity {
            accounts: vec!["deploy".into(), "reader".into()],
            service_account: None,
            overwrite_allowed: Some(regex.into()),
        };
        for (regex, problem) in [
            ("deploy|reader", "not anchored at the start"),
            ("^(deploy|reader)", "not anchored at the end"),
            ("(deploy|reader)$", "not anchored at the start"),
            ("^deploy$|reader", "not anchored"),
            ("^(deploy|reader|admin)$", "admits [\"admin\"]"),
            ("^deploy.*$", "uses '*'"),
            ("^deploy.$", "more than"),
            ("^(deploy|reader)+$", "uses '+'"),
            ("^[a-z]+$", "uses '['"),
            ("^(?i)deploy$", "admits"),
            ("^deploy\\b$", "assertion"),
            ("^(deploy$", "does not parse"),
            ("^other:deploy$", "admits [\"other:deploy\"]"),
        ] {
            let issues = declared(regex).issues("executor");
            assert_eq!(issues.len(), 1, "{regex}: {issues:?}");
            assert_eq!(
                issues[0].field,
                "executor.service_account_overwrite_allowed"
            );
            assert!(
                issues[0].problem.contains(problem),
                "{regex}: {}",
                issues[0].problem
            );
            assert!(
                issues[0].fix.contains(r"^(deploy|reader)$"),
                "{}",
                issues[0].fix
            );
        }
        // Subsets, optional parts and other spellings of the same set are fine.
        for ok in [
            "^(deploy|reader)$",
            "^deploy$",
            "^(?:deploy|reader)$",
            "^(deplo(y)|reader)$",
            "^re?ader$|^deploy$",
        ] {
            let admitted = admitted_accounts(ok).unwrap();
            if ok.contains("re?ader") {
                assert_eq!(admitted, set(&["deploy", "rader", "reader"]));
                continue;
            }
            assert!(declared(ok).issues("executor").is_empty(), "{ok}");
        }
        // No declared account: any overwrite regex admits an account outside the set.
        let none = JobIdentity {
            overwrite_allowed: Some("^deploy$".into()),
            ..JobIdentity::default()
        };
        assert!(none.issues("executor")[0].fix.contains("leave it unset"));
    }

    #[test]
    fn the_default_account_must_be_declared_and_names_must_be_valid() {
        let wrong = JobIdentity {
            accounts: vec!["deploy".into()],
            service_account: Some("admin".into()),
            overwrite_allowed: None,
        };
        let issues = wrong.issues("executor");
        assert_eq!(issues[0].field, "executor.service_account");
        let bad = JobIdentity::for_accounts(["Deploy_Role", "a", "a"]);
        let fields: Vec<String> = bad
            .issues("executor")
            .into_iter()
            .map(|i| i.field)
            .collect();
        assert!(
            fields.contains(&"executor.job_service_accounts[0]".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"executor.job_service_accounts[2]".to_owned()),
            "{fields:?}"
        );
    }

    #[test]
    fn which_jobs_have_an_identity() {
        let one = JobIdentity::for_accounts(["deploy"]);
        assert!(one.job_has_identity(None));
        let two = JobIdentity::for_accounts(["deploy", "reader"]);
        assert!(!two.job_has_identity(None), "no default with two roles");
        assert!(two.job_has_identity(Some("reader")));
        assert!(
            !two.job_has_identity(Some("admin")),
            "the runner refuses it"
        );
        assert!(!JobIdentity::default().job_has_identity(Some("deploy")));
    }

    /// The executor table carries both settings, and the TOML round-trips the regex's
    /// backslashes (the runner reads the string, not a TOML escape of it).
    #[test]
    fn the_runner_config_carries_the_settings_and_validation_refuses_a_wrong_regex() {
        let values = crate::RunnerValues::new("https://gitlab.example.com/")
            .with_job_namespace("ci-jobs")
            .with_job_service_accounts(["deploy", "read.only"]);
        values.validate().unwrap();
        let config: toml::Value = toml::from_str(&values.runners_config()).unwrap();
        let k8s = &config["runners"][0]["kubernetes"];
        assert_eq!(
            k8s["service_account_overwrite_allowed"].as_str(),
            Some(r"^(deploy|read\.only)$")
        );
        assert!(k8s.get("service_account").is_none());
        let one = crate::RunnerValues::new("https://gitlab.example.com/")
            .with_job_service_accounts(["deploy"]);
        let config: toml::Value = toml::from_str(&one.runners_config()).unwrap();
        let k8s = &config["runners"][0]["kubernetes"];
        assert_eq!(k8s["service_account"].as_str(), Some("deploy"));
        assert!(k8s.get("service_account_overwrite_allowed").is_none());
        let none: toml::Value = toml::from_str(
            &crate::RunnerValues::new("https://gitlab.example.com/").runners_config(),
        )
        .unwrap();
        assert!(
            none["runners"][0]["kubernetes"]
                .get("service_account")
                .is_none()
        );

        let mut wrong = values.clone();
        wrong.executor.identity.overwrite_allowed = Some("deploy|read.only".into());
        let e = wrong.to_yaml().unwrap_err();
        assert_eq!(
            e.issues()[0].field,
            "executor.service_account_overwrite_allowed"
        );
    }
}
