//! The signal the runner manager's container gets when its pod stops: its image's `STOPSIGNAL`.
//!
//! When the kubelet stops a container it runs the preStop hook, then asks the runtime to stop the
//! container, and containerd sends the image's configured stop signal, not always SIGTERM
//! (containerd/cri#83, "use the image's StopSignal"; Kubernetes docs "Pod Lifecycle", termination
//! of Pods: "the container runtime's … STOPSIGNAL value defined in the container image"). At the
//! end of `terminationGracePeriodSeconds` it sends SIGKILL.
//!
//! The official GitLab Runner images set `STOPSIGNAL SIGQUIT`: gitlab-runner
//! `dockerfiles/runner/alpine/Dockerfile` and `dockerfiles/runner/ubuntu/Dockerfile` (read in the
//! Dockerfiles the images are built from, at tags v15.x through v18.x; the image config of
//! `alpine-v18.9.0` itself was not pulled here, so this rests on the Dockerfile). Chart 0.86.0 deploys
//! `registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v18.9.0` unless `image` is overridden
//! (`values.yaml` `image.registry`/`image.image`, helper `gitlab-runner.image`). GitLab Runner
//! takes SIGQUIT as "no new jobs, exit when the running ones finish" and stays graceful on a
//! second SIGQUIT; only SIGTERM or SIGINT force it to abort its builds within `shutdown_timeout`
//! (`commands/multi.go` `handleGracefulShutdown`, `handleForcefulShutdown`; docs
//! `commands/_index.md#signals`). So a release with the chart's defaults already drains when its
//! pod is replaced, until the grace period's SIGKILL.

use serde::{Deserialize, Serialize};

/// The signal a container's runtime sends to stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StopSignal {
    /// SIGQUIT: GitLab Runner stops taking jobs and exits when the running ones finish.
    Sigquit,
    /// SIGTERM: GitLab Runner aborts its running builds (`shutdown_timeout` to clean up).
    Sigterm,
}

/// Repositories of the official GitLab Runner image (`<registry>/<image>`), all built from the
/// Dockerfiles above: GitLab's registry (the chart's default) and Docker Hub's mirror
/// (`gitlab/gitlab-runner`, docs "Run GitLab Runner in a container").
pub const OFFICIAL_RUNNER_IMAGES: &[&str] = &[
    "registry.gitlab.com/gitlab-org/gitlab-runner",
    "docker.io/gitlab/gitlab-runner",
    "gitlab/gitlab-runner",
];

/// The runner manager's image, when it is not the chart's default (chart `image`: `registry`,
/// `image`, `tag`), e.g. a copy of the official image in the account's ECR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerImage {
    /// Registry host (`registry.gitlab.com` in the chart); empty for Docker Hub short names.
    pub registry: String,
    /// Repository in the registry (`gitlab-org/gitlab-runner` in the chart).
    pub image: String,
    /// Tag; `None` keeps the chart's `alpine-v<appVersion>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl ManagerImage {
    /// `<registry>/<image>` (or `<image>` with an empty registry).
    pub fn repository(&self) -> String {
        if self.registry.is_empty() {
            self.image.clone()
        } else {
            format!("{}/{}", self.registry.trim_end_matches('/'), self.image)
        }
    }

    /// SIGQUIT for the official images, SIGTERM for any other: its stop signal is unknown to
    /// glrunner, SIGTERM is the runtime's default, and assuming it makes an upgrade drain first,
    /// which cannot abort a job.
    pub fn stop_signal(&self) -> StopSignal {
        if OFFICIAL_RUNNER_IMAGES.contains(&self.repository().as_str()) {
            StopSignal::Sigquit
        } else {
            StopSignal::Sigterm
        }
    }
}

/// The stop signal of the manager container a release's user-supplied chart values deploy (see
/// [`ManagerImage::stop_signal`]); SIGQUIT when `image` is absent or overrides only the tag.
pub fn manager_stop_signal(chart_values: &serde_json::Value) -> StopSignal {
    let Some(image) = chart_values.get("image") else {
        return StopSignal::Sigquit;
    };
    let Some(name) = image.get("image").and_then(|i| i.as_str()) else {
        return StopSignal::Sigquit;
    };
    ManagerImage {
        registry: image
            .get("registry")
            .and_then(|r| r.as_str())
            .unwrap_or("registry.gitlab.com")
            .to_string(),
        image: name.to_string(),
        tag: None,
    }
    .stop_signal()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_charts_default_image_and_the_official_mirrors_stop_with_sigquit() {
        assert_eq!(manager_stop_signal(&json!({})), StopSignal::Sigquit);
        assert_eq!(
            manager_stop_signal(&json!({"image": {"tag": "alpine-v18.9.0"}})),
            StopSignal::Sigquit
        );
        assert_eq!(
            manager_stop_signal(
                &json!({"image": {"registry": "", "image": "gitlab/gitlab-runner"}})
            ),
            StopSignal::Sigquit
        );
        assert_eq!(
            manager_stop_signal(
                &json!({"image": {"registry": "docker.io", "image": "gitlab/gitlab-runner"}})
            ),
            StopSignal::Sigquit
        );
    }

    #[test]
    fn an_image_glrunner_does_not_know_is_taken_to_stop_with_sigterm() {
        assert_eq!(
            manager_stop_signal(
                &json!({"image": {"registry": "123.dkr.ecr.us-east-1.amazonaws.com", "image": "my/runner"}})
            ),
            StopSignal::Sigterm
        );
    }
}
