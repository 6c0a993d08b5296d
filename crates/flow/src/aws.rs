//! `--backend aws`: AWS through aws-config's standard chain, GitLab's REST API with
//! `GITLAB_TOKEN`, the `helm` binary, and kube-rs clients for the new cluster authenticated
//! with the built-in EKS token generator (no aws CLI for the janitor and the Secrets).
//!
//! EKS tokens live 15 minutes, and a run lasts longer (helm's `--wait` alone may take an hour), so
//! no client keeps one token. The kube-rs clients share one client whose layer asks the run's
//! token cache before every request ([`glrunner_janitor::k8s::refreshing_client`]). helm reads a
//! private temporary kubeconfig (mode 0600 in its own directory, removed after the call) whose
//! user is an exec credential plugin: this same binary, switched by `GLRUNNER_EXEC_CREDENTIAL`
//! ([`exec_credential_from_env`]), signing with the built-in generator; client-go runs it again
//! whenever the last token's `expirationTimestamp` has passed. No aws CLI, and no token in argv
//! or on disk. The kubeconfig written for people (`<state-dir>/<stack>.kubeconfig`) keeps
//! `aws eks get-token`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use glrunner_gitlab_client::{HttpGitLab, SecretToken};
use glrunner_infra::kubeconfig::{EksTokenCache, EksTokenGenerator, ExecPlugin, HelmKubeconfig};
use glrunner_infra::{ClusterAccess, StackSpec};
use glrunner_janitor::deploy::KubeJanitorInstaller;
use glrunner_janitor::k8s::{BearerToken, KubePodApi, TokenProvider};
use glrunner_runner_chart::{
    HelmCli, KubeServiceAccounts, KubeTokenSecrets, ReleaseId, ReleaseManager, ReleaseSpec,
    ReleaseStatus, Removal, TokenSecrets,
};

use glrunner_infra::{ClusterProvisioner, NetworkProvisioner, WaitPolicy};

use crate::{
    Backend, Backends, ClusterClients, ClusterConnector, ClusterTarget, Error, KubeClusterChecks,
};

/// Where the real backends are: GitLab's URL and token, the helm binary, the AWS Region and the
/// state directory, with the AWS SDK configuration loaded once for every client. The token is
/// redacted in `Debug`.
///
/// Build it from explicit values ([`Environment::builder`]) or from the standard environment
/// ([`Environment::from_env`]: `GITLAB_TOKEN`, `GITLAB_URL`/`CI_SERVER_URL`, `GLRUNNER_HELM`,
/// aws-config's Region chain).
#[derive(Debug, Clone)]
pub struct Environment {
    gitlab_url: String,
    token: SecretToken,
    helm: Option<PathBuf>,
    region: String,
    state_dir: PathBuf,
    eks_auth: EksAuth,
    /// Loaded once, on first use, for every client (EC2, EKS, IAM, the preflight's, the tokens').
    sdk: Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>,
}

/// How glrunner authenticates to an EKS cluster beyond the AWS credentials: how long the
/// apiserver accepts a token, and the program helm runs as its exec credential plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksAuth {
    /// EKS's 15 minutes ([`glrunner_infra::kubeconfig::EKS_TOKEN_LIFETIME`]) unless a test
    /// double accepts tokens for less ([`glrunner_infra::kubeconfig::TOKEN_LIFETIME_ENV`]).
    pub token_lifetime: Duration,
    /// The credential plugin helm runs; `None`: the running binary, which must call
    /// [`exec_credential_from_env`] first thing in `main` (every glrunner example does, through
    /// the root package's `cli::exec_credential_plugin`). An embedder whose binary does not
    /// names one that does.
    pub credential_plugin: Option<PathBuf>,
}

impl Default for EksAuth {
    fn default() -> Self {
        Self {
            token_lifetime: glrunner_infra::kubeconfig::EKS_TOKEN_LIFETIME,
            credential_plugin: None,
        }
    }
}

impl EksAuth {
    /// The token lifetime from `GLRUNNER_EKS_TOKEN_LIFETIME_SECONDS` (EKS's own when unset; a
    /// bad value is invalid input naming it), the running binary as the plugin.
    pub fn from_env() -> Result<Self, Error> {
        let token_lifetime =
            glrunner_infra::kubeconfig::token_lifetime_from_env().map_err(|e| {
                Error::invalid(
                    glrunner_infra::kubeconfig::TOKEN_LIFETIME_ENV,
                    e.to_string(),
                )
            })?;
        Ok(Self {
            token_lifetime,
            credential_plugin: None,
        })
    }

    /// The plugin helm runs for tokens of `region`: [`EksAuth::credential_plugin`], else this
    /// process's own executable.
    pub fn plugin(&self, region: &str) -> Result<ExecPlugin, String> {
        let program = match &self.credential_plugin {
            Some(program) => program.clone(),
            None => std::env::current_exe().map_err(|e| {
                format!(
                    "cannot find this program's own path to run it as helm's credential plugin: {e}"
                )
            })?,
        };
        Ok(ExecPlugin {
            program,
            region: region.to_owned(),
            token_lifetime: self.token_lifetime,
        })
    }

    fn generator(&self, sdk: &aws_config::SdkConfig) -> Result<EksTokenGenerator, String> {
        Ok(EksTokenGenerator::new(sdk)
            .map_err(|e| e.to_string())?
            .with_lifetime(self.token_lifetime))
    }
}

/// Builds an [`Environment`] from explicit values, for embedders that do not read the process
/// environment.
#[derive(Debug, Default)]
pub struct EnvironmentBuilder {
    gitlab_url: Option<String>,
    token: Option<SecretToken>,
    helm: Option<PathBuf>,
    region: Option<String>,
    state_dir: Option<PathBuf>,
    eks_auth: EksAuth,
    sdk: Option<aws_config::SdkConfig>,
}

impl EnvironmentBuilder {
    /// GitLab's base URL (`https://gitlab.com`).
    pub fn gitlab_url(mut self, url: impl Into<String>) -> Self {
        self.gitlab_url = Some(url.into());
        self
    }

    /// The GitLab token (a token with the `api` scope).
    pub fn gitlab_token(mut self, token: SecretToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The helm binary (default: `helm` on `PATH`).
    pub fn helm(mut self, program: impl Into<PathBuf>) -> Self {
        self.helm = Some(program.into());
        self
    }

    /// The AWS Region (required unless [`EnvironmentBuilder::sdk_config`] carries one).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The state directory (default `.glrunner`).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// How glrunner authenticates to EKS clusters (default: EKS's token lifetime, this binary as
    /// helm's credential plugin).
    pub fn eks_auth(mut self, auth: EksAuth) -> Self {
        self.eks_auth = auth;
        self
    }

    /// An AWS SDK configuration to use instead of aws-config's standard chain (credentials,
    /// endpoint, retries of the embedder's choosing). helm's credential plugin runs in its own
    /// process with the standard chain of the environment glrunner passes on.
    pub fn sdk_config(mut self, sdk: aws_config::SdkConfig) -> Self {
        self.sdk = Some(sdk);
        self
    }

    /// Checks the values (the URL's form, the Region, a non-blank token). Makes no call.
    pub fn build(self) -> Result<Environment, Error> {
        let gitlab_url = self.gitlab_url.ok_or_else(|| {
            Error::invalid(
                "--gitlab-url",
                "no GitLab URL; pass --gitlab-url or set GITLAB_URL / CI_SERVER_URL",
            )
        })?;
        glrunner_gitlab_client::http::parse_gitlab_url(&gitlab_url, false)
            .map_err(|e| Error::invalid("--gitlab-url", e.to_string()))?;
        let token = self.token.filter(|t| !t.is_blank()).ok_or_else(|| {
            Error::invalid(
                "GITLAB_TOKEN",
                "not set (a personal access token with the api scope)",
            )
        })?;
        let region = match self.region.or_else(|| {
            self.sdk
                .as_ref()
                .and_then(|c| c.region())
                .map(|r| r.to_string())
        }) {
            Some(region) => region,
            None => {
                return Err(Error::invalid(
                    "--region",
                    "no AWS region configured; pass --region (e.g. us-east-1) or set AWS_REGION",
                ));
            }
        };
        glrunner_infra::spec::validate_region(&region)
            .map_err(|e| Error::invalid("--region", e.to_string()))?;
        Ok(Environment {
            gitlab_url,
            token,
            helm: self.helm,
            region,
            state_dir: self.state_dir.unwrap_or_else(|| PathBuf::from(".glrunner")),
            eks_auth: self.eks_auth,
            sdk: Arc::new(match self.sdk {
                Some(sdk) => tokio::sync::OnceCell::new_with(Some(sdk)),
                None => tokio::sync::OnceCell::new(),
            }),
        })
    }
}

impl Environment {
    /// An environment from explicit values.
    pub fn builder() -> EnvironmentBuilder {
        EnvironmentBuilder::default()
    }

    /// The standard environment: `gitlab_url`, else `GITLAB_URL`, else `CI_SERVER_URL`; the
    /// token from `GITLAB_TOKEN` only (never a flag: argv is visible to every process); `helm`,
    /// else `GLRUNNER_HELM`; `region`, else aws-config's Region chain ([`resolve_region`]); the EKS
    /// token lifetime ([`EksAuth::from_env`]).
    pub fn from_env(
        gitlab_url: Option<&str>,
        helm: Option<PathBuf>,
        region: Option<&str>,
        state_dir: PathBuf,
    ) -> Result<Self, Error> {
        let mut builder = Self::builder()
            .state_dir(state_dir)
            .region(resolve_region(region, Backend::Aws)?)
            .eks_auth(EksAuth::from_env()?);
        if let Some(url) = gitlab_url
            .map(str::to_owned)
            .or_else(|| std::env::var("GITLAB_URL").ok())
            .or_else(|| std::env::var("CI_SERVER_URL").ok())
        {
            builder = builder.gitlab_url(url);
        }
        if let Ok(token) = std::env::var("GITLAB_TOKEN") {
            builder = builder.gitlab_token(SecretToken::new(token.trim()));
        }
        if let Some(helm) = helm.or_else(|| std::env::var_os("GLRUNNER_HELM").map(PathBuf::from)) {
            builder = builder.helm(helm);
        }
        builder.build()
    }

    /// GitLab's base URL.
    pub fn gitlab_url(&self) -> &str {
        &self.gitlab_url
    }

    /// The helm binary, when one was named.
    pub fn helm(&self) -> Option<&std::path::Path> {
        self.helm.as_deref()
    }

    /// The AWS Region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// The AWS SDK configuration: the one given to the builder, else aws-config's standard chain
    /// for the Region (`AWS_ENDPOINT_URL` honoured), loaded on the first call and kept. Makes no
    /// AWS call.
    pub async fn sdk_config(&self) -> &aws_config::SdkConfig {
        self.sdk
            .get_or_init(|| glrunner_infra::aws::load_config(Some(&self.region)))
            .await
    }

    /// The preflight's AWS clients (STS, IAM simulation, Service Quotas, Price List, the EKS
    /// token generator helm will use), over the same SDK configuration. Makes no call.
    pub async fn preflight_clients(&self) -> PreflightClients {
        let sdk = self.sdk_config().await;
        PreflightClients {
            account: glrunner_infra::aws::AwsAccount::new(sdk),
            pod_identity: glrunner_infra::aws::AwsPodIdentity::new(sdk),
            // Signing is local: no call until helm runs.
            eks_tokens: self.eks_auth.generator(sdk).ok(),
        }
    }

    /// Wires the real backends over one SDK configuration. Makes no call.
    pub async fn connect(&self) -> Result<Backends, Error> {
        let sdk = self.sdk_config().await.clone();
        let infra = InfraBackend::aws(&sdk);
        let gitlab = HttpGitLab::builder()
            .with_url(&self.gitlab_url)
            .with_token(self.token.clone())
            .build()
            .map_err(|e| Error::invalid("--gitlab-url", format!("GitLab: {e}")))?;
        Ok(Backends {
            kind: Backend::Aws,
            network: Arc::from(infra.network),
            cluster: Arc::from(infra.cluster),
            waits: infra.waits,
            state_dir: Some(self.state_dir.clone()),
            gitlab: Arc::new(gitlab),
            gitlab_url: self.gitlab_url.clone(),
            connector: Arc::new(AwsConnector {
                sdk,
                helm: self.helm.clone(),
                eks_auth: self.eks_auth.clone(),
            }),
        })
    }
}

/// The AWS side of the preflight's sources; [`PreflightClients::sources`] lends them out with
/// the backends' network and GitLab.
#[derive(Debug)]
pub struct PreflightClients {
    account: glrunner_infra::aws::AwsAccount,
    eks_tokens: Option<EksTokenGenerator>,
    pod_identity: glrunner_infra::aws::AwsPodIdentity,
}

impl PreflightClients {
    /// The preflight's sources: this account, and `backends`' network and GitLab.
    pub fn sources<'a>(&'a self, backends: &'a Backends) -> crate::preflight::PreflightSources<'a> {
        crate::preflight::PreflightSources {
            account: &self.account,
            network: backends.network.as_ref(),
            gitlab: Some(backends.gitlab.as_ref()),
            eks_tokens: self.eks_tokens.as_ref(),
            cluster: Some(backends.cluster.as_ref()),
            connector: Some(backends.connector.as_ref()),
            pod_identity: Some(&self.pod_identity),
        }
    }
}

/// The region `region` names, else aws-config's environment and profile Region providers
/// (`AWS_REGION`, `AWS_DEFAULT_REGION`, then the active profile of `AWS_CONFIG_FILE` or
/// `~/.aws/config`); us-east-1 on the sandbox. Never asks the network (no instance metadata).
pub fn resolve_region(region: Option<&str>, backend: Backend) -> Result<String, Error> {
    let region = match region {
        Some(region) => Some(region.to_owned()),
        None => configured_region(),
    };
    let region = match (region, backend) {
        (Some(region), _) => region,
        (None, Backend::Sandbox) => "us-east-1".to_string(),
        (None, Backend::Aws) => {
            return Err(Error::invalid(
                "--region",
                "no AWS region configured; pass --region (e.g. us-east-1) or set AWS_REGION",
            ));
        }
    };
    glrunner_infra::spec::validate_region(&region)
        .map_err(|e| Error::invalid("--region", e.to_string()))?;
    Ok(region)
}

/// The region of aws-config's environment and profile providers, without instance metadata.
///
/// Both providers only read the environment and files, so this runs them to completion on a
/// private current-thread runtime on its own thread (callers may already be inside a runtime).
pub fn configured_region() -> Option<String> {
    use aws_config::meta::region::RegionProviderChain;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
                runtime.block_on(async {
                    RegionProviderChain::first_try(
                        aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
                    )
                    .or_else(aws_config::profile::ProfileFileRegionProvider::new())
                    .region()
                    .await
                    .map(|r| r.to_string())
                })
            })
            .join()
            .ok()
            .flatten()
    })
}

/// The network and cluster provisioners of one backend.
pub struct InfraBackend {
    /// EC2 side.
    pub network: Box<dyn NetworkProvisioner>,
    /// EKS + IAM side.
    pub cluster: Box<dyn ClusterProvisioner>,
    /// Wait policy fitting the backend.
    pub waits: WaitPolicy,
}

impl std::fmt::Debug for InfraBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfraBackend")
            .field("waits", &self.waits)
            .finish_non_exhaustive()
    }
}

impl InfraBackend {
    /// The in-memory cloud of `region` (infra's own double, not the sandbox world).
    pub fn in_memory(region: &str) -> Self {
        let cloud = glrunner_infra::memory::InMemoryCloud::new(region);
        Self {
            network: Box::new(cloud.clone()),
            cluster: Box::new(cloud),
            waits: WaitPolicy::default(),
        }
    }

    /// EC2, EKS and IAM through `sdk`. Makes no AWS call.
    pub fn aws(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            network: Box::new(glrunner_infra::aws::AwsNetwork::new(sdk)),
            cluster: Box::new(glrunner_infra::aws::AwsCluster::new(sdk)),
            waits: WaitPolicy::default(),
        }
    }

    /// The backend's provisioners: [`InfraBackend::in_memory`] on the sandbox, aws-config's
    /// standard chain on `aws` (`AWS_ENDPOINT_URL` honoured). Makes no AWS call.
    pub async fn connect(backend: Backend, region: &str) -> Self {
        match backend {
            Backend::Sandbox => Self::in_memory(region),
            Backend::Aws => Self::aws(&glrunner_infra::aws::load_config(Some(region)).await),
        }
    }
}

#[derive(Debug)]
struct AwsConnector {
    sdk: aws_config::SdkConfig,
    helm: Option<PathBuf>,
    eks_auth: EksAuth,
}

/// An EKS cluster reached with glrunner's own EKS tokens: endpoint, CA and Fargate profiles come
/// from the EKS API; one token cache serves the one kube-rs client of the cluster (checks, pods,
/// Secrets), which asks it before every request, and helm signs its own through the exec
/// credential plugin. The flow's connector uses it for its own and for a brought cluster
/// (`--cluster NAME`); the `runner` and `reap` commands use it for `--cluster NAME`.
pub struct EksCluster {
    access: ClusterAccess,
    client: kube::Client,
    plugin: ExecPlugin,
    sdk: aws_config::SdkConfig,
}

impl std::fmt::Debug for EksCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksCluster")
            .field("name", &self.access.name)
            .field("endpoint", &self.access.endpoint)
            .finish_non_exhaustive()
    }
}

impl EksCluster {
    /// Finds the cluster `name` through the EKS API of `region` (`--cluster NAME`). A cluster
    /// that does not exist (or is not ACTIVE) is invalid input naming `--cluster`. The EKS
    /// authentication settings come from the environment ([`EksAuth::from_env`]).
    pub async fn find(region: &str, name: &str) -> Result<Self, Error> {
        let auth = EksAuth::from_env()?;
        let sdk = glrunner_infra::aws::load_config(Some(region)).await;
        let infra = InfraBackend::aws(&sdk);
        let access = infra.cluster.cluster_access(name).await.map_err(|e| match e {
            glrunner_infra::Error::NotFound { .. } | glrunner_infra::Error::Conflict { .. } => {
                Error::invalid(
                    "--cluster",
                    format!(
                        "{e} (fix: name an ACTIVE EKS cluster of region {region}; `aws eks list-clusters` lists them)"
                    ),
                )
            }
            other => Error::backend(format!("--cluster {name}"), other),
        })?;
        Self::connect(&sdk, access, &auth)
            .await
            .map_err(|e| Error::backend(format!("--cluster {name}"), e))
    }

    /// The cluster at `access`, authenticated with tokens signed by `sdk`'s credentials.
    pub async fn connect(
        sdk: &aws_config::SdkConfig,
        access: ClusterAccess,
        auth: &EksAuth,
    ) -> Result<Self, String> {
        let config = kube_config(&access).await?;
        let generator = auth.generator(sdk)?;
        let plugin = auth.plugin(generator.region())?;
        let tokens = Arc::new(EksTokenCache::new(generator, access.name.clone()));
        let client = glrunner_janitor::k8s::refreshing_client(config, Arc::new(EksTokens(tokens)))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            access,
            client,
            plugin,
            sdk: sdk.clone(),
        })
    }

    /// The applied value of the account's Fargate On-Demand vCPU quota (L-3032A538) from
    /// Service Quotas, for the janitor's metrics; `None` (logged) when it cannot be read.
    pub async fn fargate_vcpu_quota(&self) -> Option<f64> {
        use glrunner_infra::account::{AccountInspector as _, FARGATE_VCPU};
        let account = glrunner_infra::aws::AwsAccount::new(&self.sdk);
        let (service, code) = FARGATE_VCPU.codes();
        match account.quota(service, code).await {
            Ok(quota) => Some(quota.value),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Fargate vCPU quota; the metric stays unset");
                None
            }
        }
    }

    /// Endpoint, CA and Fargate profiles as the EKS API reported them.
    pub fn access(&self) -> &ClusterAccess {
        &self.access
    }

    /// The janitor's pod API on the cluster's one refreshing client.
    pub fn pods(&self) -> KubePodApi {
        KubePodApi::from_client(self.client.clone())
    }

    /// The in-cluster janitor's installer on the cluster's one refreshing client.
    pub fn janitor(&self) -> KubeJanitorInstaller {
        KubeJanitorInstaller::new(self.client.clone())
    }

    /// The job ServiceAccounts' installer on the cluster's one refreshing client.
    pub fn job_accounts(&self) -> KubeServiceAccounts {
        KubeServiceAccounts::new(self.client.clone())
    }

    /// The runners' token Secrets on the cluster's one refreshing client.
    pub fn secrets(&self) -> impl TokenSecrets + use<> {
        KubeTokenSecrets::new(self.client.clone())
    }

    /// Helm whose kubeconfig runs glrunner's own credential plugin; fails now, not at the first
    /// release, when no helm can be found.
    pub fn releases(&self, program: Option<PathBuf>) -> Result<TokenHelm, String> {
        let mut probe = HelmCli::builder();
        if let Some(program) = &program {
            probe = probe.with_program(program);
        }
        probe.build().map_err(|e| e.to_string())?;
        Ok(TokenHelm::new(
            self.access.clone(),
            self.plugin.clone(),
            program,
        ))
    }

    /// The cluster checks' client: the same refreshing client, so the manager log tails read
    /// long after the pre-install checks stay authenticated.
    pub fn checks(&self) -> KubeClusterChecks {
        KubeClusterChecks::new(self.client.clone())
    }
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
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| {
            format!(
                "cluster {} (endpoint {}): {e}",
                access.name, access.endpoint
            )
        })?;
    // Every call of the flow's kube-rs clients is bounded, as the janitor's are: retrying is the
    // flow's decision (the janitor's next round, teardown's one retry of a retryable error).
    Ok(glrunner_janitor::k8s::bounded(config))
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
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
    // Every call of the flow's kube-rs clients is bounded, as the janitor's are: retrying is the
    // flow's decision (the janitor's next round, teardown's one retry of a retryable error).
    Ok(glrunner_janitor::k8s::bounded(config))
}

/// The exec credential plugin's work, when this process was started as one: `None` unless
/// `GLRUNNER_EXEC_CREDENTIAL` is set (by helm's kubeconfig, [`HelmKubeconfig`]); else the
/// ExecCredential JSON to print on stdout, for the cluster and Region of `GLRUNNER_EKS_CLUSTER`
/// and `AWS_REGION`, signed with credentials of aws-config's standard chain (the environment
/// glrunner handed helm, which helm hands its plugin). Every glrunner binary calls this before
/// anything else (the root package's `cli::exec_credential_plugin`); the error says what is
/// missing, for client-go to show.
pub async fn exec_credential_from_env() -> Option<Result<secrecy::SecretString, String>> {
    use glrunner_infra::kubeconfig::{
        EXEC_CLUSTER_ENV, EXEC_CREDENTIAL_ENV, EXEC_REGION_ENV, exec_credential,
    };
    std::env::var_os(EXEC_CREDENTIAL_ENV).filter(|v| !v.is_empty())?;
    Some(
        async {
            let var = |name: &str| {
                std::env::var(name)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| {
                        format!(
                            "glrunner credential plugin: {name} is not set (the kubeconfig's exec.env names the EKS cluster and its Region)"
                        )
                    })
            };
            let cluster = var(EXEC_CLUSTER_ENV)?;
            let region = var(EXEC_REGION_ENV)?;
            let auth = EksAuth::from_env().map_err(|e| format!("glrunner credential plugin: {e}"))?;
            let sdk = glrunner_infra::aws::load_config(Some(&region)).await;
            let token = auth
                .generator(&sdk)
                .map_err(|e| format!("glrunner credential plugin: {e}"))?
                .token(&cluster)
                .await
                .map_err(|e| format!("glrunner credential plugin: EKS cluster {cluster}: {e}"))?;
            Ok(exec_credential(&token))
        }
        .await,
    )
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

/// [`ReleaseManager`] that runs helm on an EKS cluster with a kubeconfig whose user is glrunner's
/// own exec credential plugin ([`HelmKubeconfig`]: no token, no secret; mode 0600 in a private
/// directory written just before the call and removed right after it). client-go runs the
/// plugin for a fresh token whenever the last one's `expirationTimestamp` has passed, so a
/// `--wait` longer than a token's 15 minutes stays authenticated.
pub struct TokenHelm {
    access: ClusterAccess,
    plugin: ExecPlugin,
    program: Option<PathBuf>,
}

impl std::fmt::Debug for TokenHelm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHelm")
            .field("cluster", &self.access.name)
            .field("program", &self.program)
            .field("credential_plugin", &self.plugin.program)
            .finish_non_exhaustive()
    }
}

impl TokenHelm {
    /// Helm (`program`, else `helm` on PATH) for `access`, authenticated by `plugin`.
    pub fn new(access: ClusterAccess, plugin: ExecPlugin, program: Option<PathBuf>) -> Self {
        Self {
            access,
            plugin,
            program,
        }
    }

    /// A helm client bound to a fresh plugin kubeconfig; the kubeconfig goes when dropped.
    async fn helm(&self) -> glrunner_runner_chart::Result<(HelmCli, HelmKubeconfig)> {
        let kubeconfig = HelmKubeconfig::new(&self.access, &self.plugin).map_err(|e| {
            glrunner_runner_chart::Error::PermissionDenied {
                resource: format!("EKS cluster {}", self.access.name),
                action: "authenticate helm".into(),
                detail: e.to_string(),
            }
        })?;
        let mut builder = HelmCli::builder().with_kubeconfig(kubeconfig.path());
        if let Some(program) = &self.program {
            builder = builder.with_program(program);
        }
        Ok((builder.build()?, kubeconfig))
    }
}

#[async_trait]
impl ReleaseManager for TokenHelm {
    async fn ensure(&self, spec: &ReleaseSpec) -> glrunner_runner_chart::Result<ReleaseStatus> {
        let (helm, _kubeconfig) = self.helm().await?;
        helm.ensure(spec).await
    }
    async fn upgrade(&self, spec: &ReleaseSpec) -> glrunner_runner_chart::Result<ReleaseStatus> {
        let (helm, _kubeconfig) = self.helm().await?;
        helm.upgrade(spec).await
    }
    async fn uninstall(
        &self,
        id: &ReleaseId,
        timeout: Duration,
    ) -> glrunner_runner_chart::Result<Removal> {
        let (helm, _kubeconfig) = self.helm().await?;
        helm.uninstall(id, timeout).await
    }
    async fn status(&self, id: &ReleaseId) -> glrunner_runner_chart::Result<Option<ReleaseStatus>> {
        let (helm, _kubeconfig) = self.helm().await?;
        helm.status(id).await
    }
    async fn list<'a>(
        &self,
        namespace: Option<&'a str>,
    ) -> glrunner_runner_chart::Result<Vec<ReleaseStatus>> {
        let (helm, _kubeconfig) = self.helm().await?;
        helm.list(namespace).await
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
                    janitor: Arc::new(KubeJanitorInstaller::new(client.clone())),
                    job_accounts: Arc::new(KubeServiceAccounts::new(client.clone())),
                    checks: Arc::new(KubeClusterChecks::new(client)),
                })
            }
            ClusterTarget::Eks(access) => {
                let cluster = EksCluster::connect(&self.sdk, access.clone(), &self.eks_auth)
                    .await
                    .map_err(fail)?;
                Ok(ClusterClients {
                    releases: Arc::new(cluster.releases(self.helm.clone()).map_err(fail)?),
                    secrets: Arc::new(cluster.secrets()),
                    pods: Arc::new(cluster.pods()),
                    clock: Arc::new(glrunner_janitor::SystemClock),
                    checks: Arc::new(cluster.checks()),
                    janitor: Arc::new(cluster.janitor()),
                    job_accounts: Arc::new(cluster.job_accounts()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_flow_s_kube_clients_have_no_retry_layer_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:6443'}\n\
             users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n\
             current-context: x\n",
        )
        .unwrap();
        let config = kube_config_from_file(&path, None).await.unwrap();
        assert!(
            !config.default_retry,
            "kube-rs would retry 429/503/504 up to 15 times"
        );
        assert!(config.read_timeout.is_some() && config.connect_timeout.is_some());
    }
}
