//! Image references through the stack's ECR pull-through cache: which upstream registry an image
//! comes from, the path it has in the cache, and the runner's helper image there.
//!
//! A pull-through cache rule maps an upstream registry to a repository prefix in the account's
//! private registry; an image is then pulled as
//! `<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<upstream repository>:<tag>` (ECR User
//! Guide, "Pulling an image with a pull through cache rule"). Docker Hub's official images need
//! their `library/` namespace spelled out there (same page: "For Docker Hub official images, the
//! /library prefix must be included"). The rule's upstream URLs and registry kinds are ECR's own
//! (`CreatePullThroughCacheRule`, `upstreamRegistryUrl` and the `UpstreamRegistry` enum of the
//! ECR service model). References are parsed by [`ImageRef`] (distribution/reference's grammar).

use std::collections::BTreeMap;

use glrunner_gitlab_client::trace::ImageRef;
use serde::Serialize;

pub use glrunner_infra::image_cache::Upstream;

/// The upstream an image reference's registry is, among those the stack's cache mirrors
/// ([`Upstream`]); `None` for any other registry. A reference without a registry is Docker
/// Hub's (distribution/reference normalize.go: `docker.io` is the default domain;
/// `index.docker.io` is its legacy name).
pub fn upstream_of(image: &ImageRef) -> Option<Upstream> {
    match image.domain.as_deref() {
        None | Some("docker.io" | "index.docker.io" | "registry-1.docker.io") => {
            Some(Upstream::DockerHub)
        }
        Some(domain) => Upstream::ALL.into_iter().find(|u| u.url() == domain),
    }
}

/// Where an image comes from on this fleet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum ImagePath {
    /// Through the pull-through cache: the reference to pull instead.
    Cache {
        /// The reference as given.
        original: String,
        /// The same image in the cache.
        cached: String,
        /// The upstream registry.
        upstream: Upstream,
    },
    /// Straight from its registry: why not through the cache.
    Direct {
        /// The reference as given.
        original: String,
        /// Why it is not rewritten (already private ECR, a registry ECR cannot mirror, a rule
        /// the stack lacks).
        reason: String,
    },
}

impl ImagePath {
    /// The reference the job or runner pulls.
    pub fn pulled(&self) -> &str {
        match self {
            ImagePath::Cache { cached, .. } => cached,
            ImagePath::Direct { original, .. } => original,
        }
    }
}

/// The stack's pull-through cache: the private registry and the prefix of each rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageCache {
    /// The private registry's host, `<account>.dkr.ecr.<region>.amazonaws.com`.
    pub registry: String,
    /// Each rule's `ecrRepositoryPrefix`, by upstream.
    pub rules: BTreeMap<Upstream, String>,
}

impl ImageCache {
    /// The cache in `account`'s registry in `region`, with no rule yet. The host's DNS suffix
    /// follows the partition (ECR endpoints: `amazonaws.com.cn` in the China Regions).
    pub fn new(account: &str, region: &str) -> Self {
        let suffix = if glrunner_infra::spec::partition(region) == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Self {
            registry: format!("{account}.dkr.ecr.{region}.{suffix}"),
            rules: BTreeMap::new(),
        }
    }

    /// The pull-through cache a stack glrunner provisions has in `account`: one rule per
    /// upstream the spec mirrors, under [`glrunner_infra::image_cache::rule_prefix`]; `None` when
    /// the stack has no cache (`--no-image-cache`).
    pub fn for_stack(spec: &glrunner_infra::StackSpec, account: &str) -> Option<Self> {
        let upstreams = spec.image_cache.upstreams();
        if upstreams.is_empty() {
            return None;
        }
        Some(
            upstreams
                .into_iter()
                .fold(Self::new(account, &spec.region), |cache, upstream| {
                    let prefix = glrunner_infra::image_cache::rule_prefix(&spec.stack, upstream);
                    cache.with_rule(upstream, prefix)
                }),
        )
    }

    /// The cache the rules of `account`'s registry in `region` make, for a cluster the user
    /// brought: the first rule (by prefix) of each upstream glrunner knows; rules of other
    /// registries are left out, and an upstream without a rule goes direct, saying so.
    pub fn from_rules(
        account: &str,
        region: &str,
        rules: &[glrunner_infra::image_cache::CacheRule],
    ) -> Self {
        let mut rules: Vec<_> = rules.iter().collect();
        rules.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        let mut cache = Self::new(account, region);
        for rule in rules {
            if let Some(upstream) = rule.upstream()
                && !cache.rules.contains_key(&upstream)
            {
                cache = cache.with_rule(upstream, rule.prefix.clone());
            }
        }
        cache
    }

    /// Adds the rule mirroring `upstream` under `prefix` (a trailing `/` is ECR's own: ignored).
    #[must_use]
    pub fn with_rule(mut self, upstream: Upstream, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.rules
            .insert(upstream, prefix.trim_end_matches('/').to_owned());
        self
    }

    /// Where `image` comes from: its cache path when a rule mirrors its registry, else why not.
    /// Tags and digests are kept; a Docker Hub image without a namespace gains `library/`.
    pub fn path(&self, image: &str) -> Result<ImagePath, String> {
        let parsed = ImageRef::parse(image)?;
        let direct = |reason: String| ImagePath::Direct {
            original: image.to_owned(),
            reason,
        };
        if parsed.domain.as_deref() == Some(self.registry.as_str()) {
            return Ok(direct("already in the stack's registry".into()));
        }
        let Some(upstream) = upstream_of(&parsed) else {
            return Ok(direct(format!(
                "{} is not a registry the stack's pull-through cache mirrors (glrunner's rules cover {})",
                parsed.domain.as_deref().unwrap_or_default(),
                Upstream::ALL.map(Upstream::url).join(", ")
            )));
        };
        let Some(prefix) = self.rules.get(&upstream) else {
            let how = if upstream.needs_credential() {
                " (it needs a credential: see `provision --help`)"
            } else {
                ""
            };
            return Ok(direct(format!(
                "the registry has no pull-through cache rule for {}{how}",
                upstream.url()
            )));
        };
        let repository = if upstream == Upstream::DockerHub && !parsed.path.contains('/') {
            format!("library/{}", parsed.path)
        } else {
            parsed.path.clone()
        };
        let mut cached = format!("{}/{prefix}/{repository}", self.registry);
        if let Some(tag) = &parsed.tag {
            cached.push(':');
            cached.push_str(tag);
        }
        if let Some(digest) = &parsed.digest {
            cached.push('@');
            cached.push_str(digest);
        }
        Ok(ImagePath::Cache {
            original: image.to_owned(),
            cached,
            upstream,
        })
    }

    /// The reference to pull for `image`: its cache path, or itself.
    pub fn rewrite(&self, image: &str) -> Result<String, String> {
        self.path(image).map(|p| p.pulled().to_owned())
    }

    /// Where the runner's helper image with `tag` ([`helper_tag`], or
    /// [`HELPER_TAG_OF_RUNNER`]) comes from: through the rule for ECR Public, where GitLab
    /// publishes every stable helper image too, else the one for registry.gitlab.com; straight
    /// from registry.gitlab.com (what the runner pulls by itself) when neither rule exists.
    pub fn helper_path(&self, tag: &str) -> ImagePath {
        let original = format!("{HELPER_GITLAB}:{tag}");
        [
            (Upstream::EcrPublic, HELPER_ECR_PUBLIC),
            (Upstream::GitLab, HELPER_GITLAB),
        ]
        .into_iter()
        .find_map(|(upstream, image)| {
            let prefix = self.rules.get(&upstream)?;
            // The tag may hold `${CI_RUNNER_VERSION}`, which is no valid tag until the runner
            // expands it, so the path is put together here instead of by [`Self::path`].
            let repository = image.split_once('/').map_or(image, |(_, r)| r);
            Some(ImagePath::Cache {
                original: original.clone(),
                cached: format!("{}/{prefix}/{repository}:{tag}", self.registry),
                upstream,
            })
        })
        .unwrap_or_else(|| ImagePath::Direct {
            original: original.clone(),
            reason:
                "the registry has no pull-through cache rule for public.ecr.aws or registry.gitlab.com"
                    .into(),
        })
    }
}

/// The helper image's home on registry.gitlab.com (gitlab-runner
/// helpers/container/helperimage/info.go:26, `GitLabRegistryName`).
pub const HELPER_GITLAB: &str = "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper";

/// The helper image on ECR Public: every stable release pushes the same tags there
/// (gitlab-runner .gitlab/ci/release.gitlab-ci.yml:198, `public.ecr.aws/gitlab/gitlab-runner-helper`).
pub const HELPER_ECR_PUBLIC: &str = "public.ecr.aws/gitlab/gitlab-runner-helper";

/// The helper tag the Kubernetes executor picks on Linux/x86_64 for `runner_version` with the
/// default (alpine) flavour: `x86_64-v<MAJOR.MINOR.PATCH>` (helperimage/linux_info.go:14-38:
/// `<flavour->arch-revision`, the alpine flavour without a prefix; info.go:99 `Version`:
/// `v` + the leading `MAJOR.MINOR.PATCH`, else `latest`). EKS Fargate runs x86_64 pods only
/// (EKS User Guide, Fargate considerations), so the architecture is fixed.
pub fn helper_tag(runner_version: &str) -> String {
    let version = runner_version.trim_start_matches('v');
    let numeric: String = version
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap_or_default()
        .to_owned();
    let parts: Vec<&str> = numeric.split('.').collect();
    if parts.len() >= 3 && parts[..3].iter().all(|p| !p.is_empty()) {
        format!("x86_64-v{}", parts[..3].join("."))
    } else {
        "x86_64-latest".to_owned()
    }
}

/// The helper tag of whatever runner version runs: the runner expands job variables in
/// `helper_image` (gitlab-runner executors/kubernetes/kubernetes.go:3133, `ExpandValue`), and
/// `CI_RUNNER_VERSION` is its own version without a `v` (common/version.go:67), so this names the
/// tag [`helper_tag`] would for it. For charts whose runner version glrunner does not know.
pub const HELPER_TAG_OF_RUNNER: &str = "x86_64-v${CI_RUNNER_VERSION}";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cache() -> ImageCache {
        ImageCache::new("123456789012", "us-east-1")
            .with_rule(Upstream::EcrPublic, "ci/ecr-public")
            .with_rule(Upstream::DockerHub, "ci/docker-hub/")
            .with_rule(Upstream::Quay, "ci/quay")
    }

    const REG: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    #[test]
    fn docker_hub_images_gain_library_and_keep_tags_and_digests() {
        let c = cache();
        let digest = format!("sha256:{}", "a".repeat(64));
        for (image, want) in [
            ("alpine", format!("{REG}/ci/docker-hub/library/alpine")),
            (
                "alpine:3.22",
                format!("{REG}/ci/docker-hub/library/alpine:3.22"),
            ),
            (
                "docker.io/library/ruby:3.3",
                format!("{REG}/ci/docker-hub/library/ruby:3.3"),
            ),
            (
                "index.docker.io/bitnami/redis:7",
                format!("{REG}/ci/docker-hub/bitnami/redis:7"),
            ),
            (
                &*format!("node:22@{digest}"),
                format!("{REG}/ci/docker-hub/library/node:22@{digest}"),
            ),
            (
                "public.ecr.aws/docker/library/debian:bookworm-slim",
                format!("{REG}/ci/ecr-public/docker/library/debian:bookworm-slim"),
            ),
            (
                "quay.io/fedora/fedora:41",
                format!("{REG}/ci/quay/fedora/fedora:41"),
            ),
        ] {
            assert_eq!(c.rewrite(image).unwrap(), want, "{image}");
        }
    }

    #[test]
    fn a_brought_clusters_registry_rules_are_used_and_the_missing_ones_named() {
        use glrunner_infra::image_cache::CacheRule;
        let rule = |prefix: &str, url: &str| CacheRule {
            prefix: prefix.into(),
            upstream_url: url.into(),
        };
        let cache = ImageCache::from_rules(
            "123456789012",
            "us-east-1",
            &[
                rule("team/ecr", "public.ecr.aws"),
                rule("other/ecr", "public.ecr.aws"),
                rule("azure", "myreg.azurecr.io"),
            ],
        );
        assert_eq!(cache.rules.len(), 1);
        assert_eq!(
            cache
                .rewrite("public.ecr.aws/docker/library/alpine:3.20")
                .unwrap(),
            format!("{REG}/other/ecr/docker/library/alpine:3.20")
        );
        match cache.path("quay.io/fedora/fedora:41").unwrap() {
            ImagePath::Direct { reason, .. } => {
                assert!(
                    reason.contains("no pull-through cache rule for quay.io"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(
            ImageCache::from_rules("123456789012", "us-east-1", &[])
                .rules
                .is_empty()
        );
    }

    #[test]
    fn images_no_rule_mirrors_stay_and_say_why() {
        let c = cache();
        for (image, why) in [
            (
                "registry.gitlab.com/group/app:1",
                "no pull-through cache rule for registry.gitlab.com (it needs a credential",
            ),
            ("ghcr.io/org/tool:2", "not a registry the stack's"),
            (
                "mcr.microsoft.com/dotnet/sdk:8.0",
                "not a registry the stack's",
            ),
            (&*format!("{REG}/app:1"), "already in the stack's registry"),
        ] {
            match c.path(image).unwrap() {
                ImagePath::Direct { original, reason } => {
                    assert_eq!(original, image);
                    assert!(reason.contains(why), "{image}: {reason}");
                }
                other => panic!("{image} went {other:?}"),
            }
        }
        assert!(c.path("Not An Image").is_err());
    }

    #[test]
    fn the_helper_comes_through_ecr_public_at_the_runners_exact_tag() {
        assert_eq!(helper_tag("18.9.0"), "x86_64-v18.9.0");
        assert_eq!(helper_tag("v17.11.3"), "x86_64-v17.11.3");
        assert_eq!(helper_tag("18.10.0~pre.1"), "x86_64-v18.10.0");
        assert_eq!(helper_tag("main"), "x86_64-latest");
        let tag = helper_tag("18.9.0");
        let upstream =
            "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v18.9.0";
        assert_eq!(
            cache().helper_path(&tag),
            ImagePath::Cache {
                original: upstream.into(),
                cached: format!("{REG}/ci/ecr-public/gitlab/gitlab-runner-helper:x86_64-v18.9.0"),
                upstream: Upstream::EcrPublic,
            }
        );
        let gitlab_only =
            ImageCache::new("123456789012", "us-east-1").with_rule(Upstream::GitLab, "ci/gitlab");
        assert_eq!(
            gitlab_only.helper_path(HELPER_TAG_OF_RUNNER).pulled(),
            format!(
                "{REG}/ci/gitlab/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v${{CI_RUNNER_VERSION}}"
            )
        );
        let none = ImageCache::new("123456789012", "us-east-1").with_rule(Upstream::Quay, "q");
        assert_eq!(none.helper_path(&tag).pulled(), upstream);
        assert!(matches!(none.helper_path(&tag), ImagePath::Direct { .. }));
    }

    #[test]
    fn china_regions_use_their_own_dns_suffix() {
        assert_eq!(
            ImageCache::new("123456789012", "cn-north-1").registry,
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
    }

    proptest! {
        /// Every rewritten reference is itself a valid reference in the stack's registry with
        /// the original's tag and digest, and rewriting it again changes nothing.
        #[test]
        fn rewrites_are_valid_and_idempotent(
            ns in proptest::option::of("[a-z0-9]{1,8}"),
            name in "[a-z0-9]{1,12}",
            tag in proptest::option::of("[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,20}"),
            host in prop_oneof![Just(None), Just(Some("docker.io")), Just(Some("public.ecr.aws")), Just(Some("quay.io"))],
        ) {
            let mut image = String::new();
            if let Some(h) = host { image.push_str(h); image.push('/'); }
            if let Some(n) = &ns { image.push_str(n); image.push('/'); }
            image.push_str(&name);
            if let Some(t) = &tag { image.push(':'); image.push_str(t); }
            let c = cache();
            let once = c.rewrite(&image).unwrap();
            let parsed = ImageRef::parse(&once).unwrap();
            prop_assert_eq!(parsed.domain.as_deref(), Some(REG));
            prop_assert_eq!(parsed.tag.as_deref(), tag.as_deref());
            prop_assert_eq!(parsed.name(), name.as_str());
            prop_assert_eq!(c.rewrite(&once).unwrap(), once);
        }
    }
}
