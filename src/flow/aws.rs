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
use glrunner_gitlab_client::{HttpGitLab, SecretToken};
use glrunner_infra::kubeconfig::EksTokenGenerator;
use glrunner_infra::{ClusterAccess, StackSpec};
use glrunner_janitor::k8s::{BearerToken, KubePodApi, TokenProvider};
use glrunner_runner_chart::{
    HelmCli, KubeTokenSecrets, RunnerToken, SecretOutcome, SecretRef, StoredTokenSecret,
    TokenSecrets,
};

use super::{Backends, ClusterClients, ClusterConnector, ClusterTarget, Error, KubeClusterChecks};
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

/// A kube-rs configuration for the cluster's endpoint and CA (no credentials), built with kube's
/// own kubeconfig types so the CA bundle is decoded and checked by kube, not by hand.
pub async fn kube_config(access: &ClusterAccess) -> Result<kube::Config, String> {
    use kube::config::{
        AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
        NamedContext,
    };
    let name = access.name.clone();
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(Cluster {
                server: Some(access.endpoint.clone()),
                certificate_authority_data: Some(access.certificate_authority.trim().to_owned()),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(AuthInfo::default()),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(name),
        ..Kubeconfig::default()
    };
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| {
                format!(
                    "cluster {} (endpoint {}): {e}",
                    access.name, access.endpoint
                )
            })?;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(config)
}

/// A kube-rs configuration from a kubeconfig file the user brought (`--kubeconfig`, `--context`).
pub async fn kube_config_from_file(
    path: &std::path::Path,
    context: Option<&str>,
) -> Result<kube::Config, String> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(config)
}

/// EKS tokens for one cluster.
#[derive(Debug, Clone)]
struct EksTokens {
    generator: EksTokenGenerator,
    cluster: String,
}

#[async_trait]
impl TokenProvider for EksTokens {
    async fn token(&self) -> glrunner_janitor::Result<BearerToken> {
        let token = self.generator.token(&self.cluster).await.map_err(|e| {
            glrunner_janitor::Error::PermissionDenied {
                action: "authenticate".into(),
                resource: format!("EKS cluster {}", self.cluster),
                message: e.to_string(),
            }
        })?;
        let expires = jiff::Timestamp::try_from(token.expires_at).ok();
        Ok(BearerToken::new(token.expose(), expires))
    }
}

/// [`TokenSecrets`] on kube-rs with a fresh EKS token whenever the last one is near expiry.
struct RefreshingSecrets {
    config: kube::Config,
    tokens: EksTokens,
    cached: tokio::sync::Mutex<Option<(Arc<KubeTokenSecrets>, SystemTime)>>,
}

impl RefreshingSecrets {
    async fn inner(&self) -> glrunner_runner_chart::Result<Arc<KubeTokenSecrets>> {
        let mut cached = self.cached.lock().await;
        if let Some((secrets, expires)) = cached.as_ref()
            && SystemTime::now() + Duration::from_secs(60) < *expires
        {
            return Ok(secrets.clone());
        }
        let denied = |message: String| glrunner_runner_chart::Error::PermissionDenied {
            resource: format!("EKS cluster {}", self.tokens.cluster),
            action: "authenticate".into(),
            detail: message,
        };
        let token = self
            .tokens
            .generator
            .token(&self.tokens.cluster)
            .await
            .map_err(|e| denied(e.to_string()))?;
        let mut config = self.config.clone();
        config.auth_info.token = Some(token.expose().to_owned().into());
        let client = kube::Client::try_from(config).map_err(|e| denied(e.to_string()))?;
        let secrets = Arc::new(KubeTokenSecrets::new(client));
        *cached = Some((secrets.clone(), token.expires_at));
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
    async fn ownership(
        &self,
        secret: &SecretRef,
    ) -> glrunner_runner_chart::Result<glrunner_runner_chart::Ownership> {
        self.inner().await?.ownership(secret).await
    }
    async fn ensure_namespace(&self, namespace: &str) -> glrunner_runner_chart::Result<bool> {
        self.inner().await?.ensure_namespace(namespace).await
    }
}

#[async_trait]
impl ClusterConnector for AwsConnector {
    async fn connect(
        &self,
        _spec: &StackSpec,
        target: ClusterTarget<'_>,
    ) -> Result<ClusterClients, Error> {
        let phase = super::Phase::Releases;
        let fail = |e: String| Error::phase(phase, e);
        match target {
            ClusterTarget::Kubeconfig { path, context } => {
                // Any conformant cluster: kube-rs and helm read the same file and context.
                let config = kube_config_from_file(path, context).await.map_err(fail)?;
                let client = kube::Client::try_from(config).map_err(|e| fail(e.to_string()))?;
                let mut helm = HelmCli::builder().with_kubeconfig(path);
                if let Some(context) = context {
                    helm = helm.with_context(context);
                }
                if let Some(program) = &self.helm {
                    helm = helm.with_program(program);
                }
                let helm = helm.build().map_err(|e| fail(e.to_string()))?;
                Ok(ClusterClients {
                    releases: Arc::new(helm),
                    secrets: Arc::new(KubeTokenSecrets::new(client.clone())),
                    pods: Arc::new(
                        KubePodApi::from_config(
                            kube_config_from_file(path, context).await.map_err(fail)?,
                        )
                        .map_err(|e| fail(e.to_string()))?,
                    ),
                    clock: Arc::new(glrunner_janitor::SystemClock),
                    checks: Arc::new(KubeClusterChecks::new(client)),
                })
            }
            ClusterTarget::Eks(access) => {
                let config = kube_config(access).await.map_err(fail)?;
                let generator =
                    EksTokenGenerator::new(&self.sdk).map_err(|e| fail(e.to_string()))?;
                let tokens = EksTokens {
                    generator,
                    cluster: access.name.clone(),
                };
                // The checks run once, right after connecting: one fresh token is enough.
                let mut checks_config = config.clone();
                let token = tokens
                    .generator
                    .token(&tokens.cluster)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                checks_config.auth_info.token = Some(token.expose().to_owned().into());
                let checks_client =
                    kube::Client::try_from(checks_config).map_err(|e| fail(e.to_string()))?;
                let pods =
                    KubePodApi::with_token_provider(config.clone(), Arc::new(tokens.clone()));
                let mut helm = HelmCli::builder().with_kubeconfig(&self.kubeconfig);
                if let Some(program) = &self.helm {
                    helm = helm.with_program(program);
                }
                let helm = helm.build().map_err(|e| fail(e.to_string()))?;
                Ok(ClusterClients {
                    releases: Arc::new(helm),
                    secrets: Arc::new(RefreshingSecrets {
                        config,
                        tokens,
                        cached: tokio::sync::Mutex::new(None),
                    }),
                    pods: Arc::new(pods),
                    clock: Arc::new(glrunner_janitor::SystemClock),
                    checks: Arc::new(KubeClusterChecks::new(checks_client)),
                })
            }
        }
    }
}
