//! `--backend aws`: AWS through aws-config's standard chain, GitLab's REST API with
//! `GITLAB_TOKEN`, the `helm` binary, and kube-rs clients for the new cluster authenticated
//! with the built-in EKS token generator (no aws CLI for the janitor and the Secrets).
//!
//! helm itself reads the kubeconfig that provisioning writes (`<state-dir>/<stack>.kubeconfig`),
//! whose user runs `aws eks get-token`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use glrunner_gitlab_client::{HttpGitLab, SecretToken};
use glrunner_infra::kubeconfig::{EksTokenCache, EksTokenGenerator};
use glrunner_infra::{ClusterAccess, StackSpec};
use glrunner_janitor::k8s::{BearerToken, KubePodApi, TokenProvider};
use glrunner_runner_chart::{
    HelmCli, KubeTokenSecrets, RunnerToken, SecretOutcome, SecretRef, StoredTokenSecret,
    TokenSecrets,
};

use super::{Backends, ClusterClients, ClusterConnector, Error};
use crate::cli::{Backend, CliError, GlobalArgs};
use crate::provisioning::{InfraBackend, resolve_region};

/// Where the real backends are, read from flags and the environment. The token is redacted in `Debug`.
#[derive(Debug)]
pub struct Connection {
    /// GitLab base URL.
    pub gitlab_url: String,
    token: SecretToken,
    /// helm binary.
    pub helm: Option<PathBuf>,
    /// AWS region.
    pub region: String,
    /// State directory (kubeconfig, infra state).
    pub state_dir: PathBuf,
}

impl Connection {
    /// `--gitlab-url`, else `GITLAB_URL`, else `CI_SERVER_URL`; the token from `GITLAB_TOKEN` only.
    pub fn from_env(
        gitlab_url: Option<&str>,
        helm: Option<PathBuf>,
        global: &GlobalArgs,
    ) -> Result<Self, CliError> {
        let url = gitlab_url
            .map(str::to_owned)
            .or_else(|| std::env::var("GITLAB_URL").ok())
            .or_else(|| std::env::var("CI_SERVER_URL").ok())
            .ok_or_else(|| CliError::invalid("--gitlab-url: no GitLab URL; pass --gitlab-url or set GITLAB_URL / CI_SERVER_URL"))?;
        glrunner_gitlab_client::http::parse_gitlab_url(&url, false)
            .map_err(|e| CliError::invalid(format!("--gitlab-url: {e}")))?;
        let token = std::env::var("GITLAB_TOKEN")
            .ok()
            .map(|t| SecretToken::new(t.trim()))
            .filter(|t| !t.is_blank())
            .ok_or_else(|| {
                CliError::invalid(
                    "GITLAB_TOKEN: not set (a token with the api and create_runner scopes)",
                )
            })?;
        let helm = helm.or_else(|| std::env::var_os("GLRUNNER_HELM").map(PathBuf::from));
        Ok(Self {
            gitlab_url: url,
            token,
            helm,
            region: resolve_region(global)?,
            state_dir: global.state_dir.clone(),
        })
    }
}

/// Wires the real backends. Loading the AWS configuration makes no call.
pub async fn connect(spec: &StackSpec, connection: Connection) -> Result<Backends, CliError> {
    let infra = InfraBackend::connect(Backend::Aws, &connection.region).await;
    let sdk = glrunner_infra::aws::load_config(Some(&connection.region)).await;
    let gitlab = HttpGitLab::builder()
        .with_url(&connection.gitlab_url)
        .with_token(connection.token)
        .build()
        .map_err(|e| CliError::invalid(format!("GitLab: {e}")))?;
    let kubeconfig = connection
        .state_dir
        .join(format!("{}.kubeconfig", spec.stack));
    Ok(Backends {
        kind: Backend::Aws,
        network: Arc::from(infra.network),
        cluster: Arc::from(infra.cluster),
        waits: infra.waits,
        state_dir: Some(connection.state_dir),
        gitlab: Arc::new(gitlab),
        gitlab_url: connection.gitlab_url,
        connector: Arc::new(AwsConnector {
            sdk,
            helm: connection.helm,
            kubeconfig,
        }),
    })
}

#[derive(Debug)]
struct AwsConnector {
    sdk: aws_config::SdkConfig,
    helm: Option<PathBuf>,
    kubeconfig: PathBuf,
}

/// A kube-rs configuration for the cluster's endpoint and CA (no credentials).
pub fn kube_config(access: &ClusterAccess) -> Result<kube::Config, String> {
    let uri: http::Uri = access
        .endpoint
        .parse()
        .map_err(|e| format!("cluster endpoint {}: {e}", access.endpoint))?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(access.certificate_authority.trim())
        .map_err(|e| format!("cluster CA of {}: {e}", access.name))?;
    let pem = String::from_utf8(pem).map_err(|e| format!("cluster CA of {}: {e}", access.name))?;
    let mut certs = Vec::new();
    let mut body = String::new();
    let mut inside = false;
    for line in pem.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") {
            inside = true;
            body.clear();
        } else if line.starts_with("-----END") {
            inside = false;
            certs.push(
                base64::engine::general_purpose::STANDARD
                    .decode(&body)
                    .map_err(|e| format!("cluster CA of {}: {e}", access.name))?,
            );
        } else if inside {
            body.push_str(line);
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "cluster CA of {}: no certificate in the PEM",
            access.name
        ));
    }
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(certs);
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(config)
}

/// The janitor's tokens, from the run's one EKS token cache (infra's [`EksTokenCache`]): the
/// cache alone decides when a token is re-signed.
#[derive(Debug, Clone)]
struct EksTokens(Arc<EksTokenCache>);

#[async_trait]
impl TokenProvider for EksTokens {
    async fn token(&self) -> glrunner_janitor::Result<BearerToken> {
        let token =
            self.0
                .token()
                .await
                .map_err(|e| glrunner_janitor::Error::PermissionDenied {
                    action: "authenticate".into(),
                    resource: format!("EKS cluster {}", self.0.cluster()),
                    message: e.to_string(),
                })?;
        let expires = jiff::Timestamp::try_from(token.expires_at).ok();
        Ok(BearerToken::new(token.expose(), expires))
    }
}

/// [`TokenSecrets`] on kube-rs with the shared cache's current EKS token; the client is rebuilt
/// only when the cache hands out a new token (each new token has a new expiry).
struct RefreshingSecrets {
    config: kube::Config,
    tokens: Arc<EksTokenCache>,
    current: tokio::sync::Mutex<Option<(SystemTime, Arc<KubeTokenSecrets>)>>,
}

impl RefreshingSecrets {
    async fn inner(&self) -> glrunner_runner_chart::Result<Arc<KubeTokenSecrets>> {
        let denied = |message: String| glrunner_runner_chart::Error::PermissionDenied {
            resource: format!("EKS cluster {}", self.tokens.cluster()),
            action: "authenticate".into(),
            detail: message,
        };
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| denied(e.to_string()))?;
        let mut current = self.current.lock().await;
        if let Some((expires, secrets)) = current.as_ref()
            && *expires == token.expires_at
        {
            return Ok(secrets.clone());
        }
        let mut config = self.config.clone();
        config.auth_info.token = Some(token.expose().to_owned().into());
        let client = kube::Client::try_from(config).map_err(|e| denied(e.to_string()))?;
        let secrets = Arc::new(KubeTokenSecrets::new(client));
        *current = Some((token.expires_at, secrets.clone()));
        Ok(secrets)
    }
}

#[async_trait]
impl TokenSecrets for RefreshingSecrets {
    async fn ensure(
        &self,
        secret: &SecretRef,
        token: &RunnerToken,
    ) -> glrunner_runner_chart::Result<SecretOutcome> {
        self.inner().await?.ensure(secret, token).await
    }
    async fn get(
        &self,
        secret: &SecretRef,
    ) -> glrunner_runner_chart::Result<Option<StoredTokenSecret>> {
        self.inner().await?.get(secret).await
    }
    async fn delete(&self, secret: &SecretRef) -> glrunner_runner_chart::Result<bool> {
        self.inner().await?.delete(secret).await
    }
}

#[async_trait]
impl ClusterConnector for AwsConnector {
    async fn connect(
        &self,
        spec: &StackSpec,
        access: Option<&ClusterAccess>,
    ) -> Result<ClusterClients, Error> {
        let phase = super::Phase::Releases;
        let access = access.ok_or_else(|| {
            Error::phase(
                phase,
                format!("cluster {} has no endpoint yet", spec.cluster.name),
            )
        })?;
        let config = kube_config(access).map_err(|e| Error::phase(phase, e))?;
        let generator = EksTokenGenerator::new(&self.sdk).map_err(|e| Error::phase(phase, e))?;
        // One token cache for every client of the cluster.
        let tokens = Arc::new(EksTokenCache::new(generator, access.name.clone()));
        let pods =
            KubePodApi::with_token_provider(config.clone(), Arc::new(EksTokens(tokens.clone())));
        let mut helm = HelmCli::builder().with_kubeconfig(&self.kubeconfig);
        if let Some(program) = &self.helm {
            helm = helm.with_program(program);
        }
        let helm = helm.build().map_err(|e| Error::phase(phase, e))?;
        Ok(ClusterClients {
            releases: Arc::new(helm),
            secrets: Arc::new(RefreshingSecrets {
                config,
                tokens,
                current: tokio::sync::Mutex::new(None),
            }),
            pods: Arc::new(pods),
            clock: Arc::new(glrunner_janitor::SystemClock),
        })
    }
}
