//! Which pods a Fargate profile takes: the selector match EKS applies, wildcards included.
//!
//! EKS User Guide, "Define which Pods use AWS Fargate when launched", Fargate profile wildcards
//! (awsdocs/amazon-eks-user-guide latest/ug/nodes/fargate-profile.adoc): "you're allowed to use
//! `*` and `?` in the selector criteria for namespaces, label keys, and label values"; `*` is
//! "none, one, or multiple characters", `?` "exactly one character"; they "can be used in any
//! position and in combination"; "other wildcards and forms of pattern matching, such as
//! regular expressions, aren't supported". A pod matches a selector when its namespace matches
//! and it carries every label of the selector ("A pod must contain all of the labels that are
//! specified in the selector": EKS API reference, FargateProfileSelector).

use std::collections::BTreeMap;

use crate::spec::FargateSelector;

/// Whether `value` matches `pattern`, where `*` stands for any run of characters (none
/// included) and `?` for exactly one; every other character stands for itself.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // Greedy two-pointer match with backtracking to the last `*`: linear in practice.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || (p[i] != '*' && p[i] == v[j])) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

impl FargateSelector {
    /// Whether a pod in `namespace` with `labels` matches this selector.
    pub fn matches(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        wildcard_match(&self.namespace, namespace)
            && self.labels.iter().all(|(key, value)| {
                labels
                    .iter()
                    .any(|(k, v)| wildcard_match(key, k) && wildcard_match(value, v))
            })
    }
}

/// Whether any of `selectors` (one Fargate profile's, or all of a cluster's) takes a pod in
/// `namespace` with `labels`.
pub fn selects(
    selectors: &[FargateSelector],
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    selectors.iter().any(|s| s.matches(namespace, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_guides_examples() {
        // `prod*` can represent `prod` and `prod-metrics`.
        assert!(wildcard_match("prod*", "prod"));
        assert!(wildcard_match("prod*", "prod-metrics"));
        // `value?` can represent `valuea`, but not `value` or `value-a`.
        assert!(wildcard_match("value?", "valuea"));
        assert!(!wildcard_match("value?", "value"));
        assert!(!wildcard_match("value?", "value-a"));
        // Any position, in combination.
        assert!(wildcard_match("*dev", "team-dev"));
        assert!(wildcard_match("frontend*?", "frontend-a"));
        assert!(!wildcard_match("frontend*?", "frontend"));
        // No regular expressions: `.` and `[` are themselves.
        assert!(!wildcard_match("prod.", "prodx"));
        assert!(wildcard_match("a[b]", "a[b]"));
    }

    #[test]
    fn a_wildcard_namespace_covers_the_runner_namespace() {
        let selector = FargateSelector::namespace("gitlab-*");
        assert!(selector.matches("gitlab-runner", &BTreeMap::new()));
        assert!(!selector.matches("kube-system", &BTreeMap::new()));
    }

    #[test]
    fn labels_need_every_selector_label_with_wildcards_in_keys_and_values() {
        let mut selector = FargateSelector::namespace("ci");
        selector.labels = labels(&[("key?", "value?"), ("tier", "*")]);
        assert!(selector.matches(
            "ci",
            &labels(&[("keya", "valuea"), ("tier", "job"), ("x", "y")])
        ));
        assert!(
            !selector.matches("ci", &labels(&[("keya", "valuea")])),
            "tier missing"
        );
        assert!(!selector.matches("ci", &labels(&[("key", "valuea"), ("tier", "j")])));
        assert!(selects(
            &[FargateSelector::namespace("other"), selector.clone()],
            "ci",
            &labels(&[("keyb", "valueb"), ("tier", "")])
        ));
    }

    /// A reference matcher: the pattern as a regular language, tried by recursion.
    fn reference(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|k| reference(rest, &v[k..])),
            Some(('?', rest)) => !v.is_empty() && reference(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && reference(rest, &v[1..]),
        }
    }

    proptest! {
        #[test]
        fn matches_the_reference(pattern in "[ab*?-]{0,8}", value in "[ab-]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let v: Vec<char> = value.chars().collect();
            prop_assert_eq!(wildcard_match(&pattern, &value), reference(&p, &v));
        }

        #[test]
        fn a_pattern_without_wildcards_is_equality(value in "[a-z0-9-]{0,12}", other in "[a-z0-9-]{0,12}") {
            prop_assert!(wildcard_match(&value, &value));
            prop_assert_eq!(wildcard_match(&value, &other), value == other);
        }

        #[test]
        fn star_matches_everything(value in "\\PC{0,16}") {
            prop_assert!(wildcard_match("*", &value));
        }
    }
}
