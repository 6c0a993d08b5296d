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

/// An upstream registry ECR's pull-through cache can mirror (the ECR service model's
/// `UpstreamRegistry` enum, the ones glrunner sets up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Upstream {
    /// Amazon ECR Public (`ecr-public`, `public.ecr.aws`): no credential.
    EcrPublic,
    /// Quay (`quay`, `quay.io`): no credential.
    Quay,
    /// The Kubernetes registry (`k8s`, `registry.k8s.io`): no credential.
    K8s,
    /// Docker Hub (`docker-hub`, `registry-1.docker.io`): needs a credential.
    DockerHub,
    /// GitHub Container Registry (`github-container-registry`, `ghcr.io`): needs a credential.
    GitHub,
    /// GitLab Container Registry (`gitlab-container-registry`, `registry.gitlab.com`): needs a
    /// credential.
    GitLab,
}

impl Upstream {
    /// Every upstream, in the order the stack creates their rules.
    pub const ALL: [Upstream; 6] = [
        Upstream::EcrPublic,
        Upstream::Quay,
        Upstream::K8s,
        Upstream::DockerHub,
        Upstream::GitHub,
        Upstream::GitLab,
    ];

    /// ECR's `UpstreamRegistry` value.
    pub fn kind(self) -> &'static str {
        match self {
            Upstream::EcrPublic => "ecr-public",
            Upstream::Quay => "quay",
            Upstream::K8s => "k8s",
            Upstream::DockerHub => "docker-hub",
            Upstream::GitHub => "github-container-registry",
            Upstream::GitLab => "gitlab-container-registry",
        }
    }

    /// The rule's `upstreamRegistryUrl` (ECR service model, CreatePullThroughCacheRule).
    pub fn url(self) -> &'static str {
        match self {
            Upstream::EcrPublic => "public.ecr.aws",
            Upstream::Quay => "quay.io",
            Upstream::K8s => "registry.k8s.io",
            Upstream::DockerHub => "registry-1.docker.io",
            Upstream::GitHub => "ghcr.io",
            Upstream::GitLab => "registry.gitlab.com",
        }
    }

    /// Whether ECR refuses the rule without a Secrets Manager credential (ECR User Guide,
    /// "Creating a pull through cache rule": Docker Hub, GitHub, GitLab and Azure need one).
    pub fn needs_credential(self) -> bool {
        matches!(
            self,
            Upstream::DockerHub | Upstream::GitHub | Upstream::GitLab
        )
    }

    /// The upstream an image reference's registry is; `None` for any other registry. A
    /// reference without a registry is Docker Hub's (distribution/reference normalize.go:
    /// `docker.io` is the default domain; `index.docker.io` is its legacy name).
    pub fn of(image: &ImageRef) -> Option<Upstream> {
        match image.domain.as_deref() {
            None | Some("docker.io" | "index.docker.io" | "registry-1.docker.io") => {
                Some(Upstream::DockerHub)
            }
            Some("public.ecr.aws") => Some(Upstream::EcrPublic),
            Some("quay.io") => Some(Upstream::Quay),
            Some("registry.k8s.io") => Some(Upstream::K8s),
            Some("ghcr.io") => Some(Upstream::GitHub),
            Some("registry.gitlab.com") => Some(Upstream::GitLab),
            Some(_) => None,
        }
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
        let Some(upstream) = Upstream::of(&parsed) else {
            return Ok(direct(format!(
                "{} is not a registry ECR's pull-through cache mirrors",
                parsed.domain.as_deref().unwrap_or_default()
            )));
        };
        let Some(prefix) = self.rules.get(&upstream) else {
            let how = if upstream.needs_credential() {
                " (it needs a credential: see `provision --help`)"
            } else {
                ""
            };
            return Ok(direct(format!(
                "the stack has no pull-through cache rule for {}{how}",
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
                "the stack has no pull-through cache rule for public.ecr.aws or registry.gitlab.com"
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
    fn images_no_rule_mirrors_stay_and_say_why() {
        let c = cache();
        for (image, why) in [
            (
                "registry.gitlab.com/group/app:1",
                "no pull-through cache rule for registry.gitlab.com (it needs a credential",
            ),
            (
                "ghcr.io/org/tool:2",
                "no pull-through cache rule for ghcr.io",
            ),
            ("mcr.microsoft.com/dotnet/sdk:8.0", "not a registry"),
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
