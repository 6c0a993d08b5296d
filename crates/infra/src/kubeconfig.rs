//! Kubeconfig for an EKS cluster, and a built-in EKS bearer-token generator (no aws CLI needed).

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials as _;
use aws_credential_types::provider::SharedCredentialsProvider;
use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::error::{Error, Result};
use crate::resource::ClusterAccess;

/// Renders a kubeconfig whose user runs `aws eks get-token`, as `aws eks update-kubeconfig`
/// writes it; with `profile`, the exec entry sets `AWS_PROFILE` so the token comes from the
/// same credentials glrunner used.
pub fn render(access: &ClusterAccess, region: &str, profile: Option<&str>) -> String {
    let name = if access.arn.is_empty() {
        access.name.clone()
    } else {
        access.arn.clone()
    };
    let mut exec = json!({
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": ["--region", region, "eks", "get-token", "--cluster-name", access.name, "--output", "json"],
        "interactiveMode": "IfAvailable",
        "provideClusterInfo": false
    });
    if let Some(profile) = profile.filter(|p| !p.is_empty()) {
        exec["env"] = json!([{ "name": "AWS_PROFILE", "value": profile }]);
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": { "server": access.endpoint, "certificate-authority-data": access.certificate_authority } }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
        "current-context": name,
        "preferences": {},
        "users": [{ "name": name, "user": { "exec": exec } }]
    });
    serde_norway::to_string(&config).expect("a JSON value always serialises to YAML")
}

/// Writes the kubeconfig atomically with mode 0600 (it names the cluster and how to get in).
pub fn write(
    path: &Path,
    access: &ClusterAccess,
    region: &str,
    profile: Option<&str>,
) -> Result<()> {
    write_private(path, render(access, region, profile).as_bytes()).map_err(|e| Error::State {
        path: path.display().to_string(),
        message: format!("cannot write kubeconfig: {e}"),
    })
}

/// Replaces `path` atomically with `bytes`, readable by the owner only (mode 0600 on Unix,
/// whatever the old file's mode was): a uniquely named temporary file in the same directory,
/// synced, then renamed over it. On error the temporary file is removed.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    // tempfile creates the file with mode 0600 and deletes it if we bail out before persist.
    let mut file = tempfile::Builder::new()
        .prefix(".glrunner-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The environment switch that turns a glrunner binary into the exec credential plugin of
/// [`HelmKubeconfig`]: set (to `1`) in the kubeconfig's `exec.env`, checked at the very start of
/// each binary's `main` (the root package's `cli::exec_credential_plugin`).
pub const EXEC_CREDENTIAL_ENV: &str = "GLRUNNER_EXEC_CREDENTIAL";
/// The EKS cluster the plugin signs tokens for (the `x-k8s-aws-id` header), from `exec.env`.
pub const EXEC_CLUSTER_ENV: &str = "GLRUNNER_EKS_CLUSTER";
/// The Region the plugin signs for, from `exec.env` (aws-config's own `AWS_REGION`).
pub const EXEC_REGION_ENV: &str = "AWS_REGION";
/// How long the apiserver accepts a token, in seconds, when it is shorter than EKS's 15 minutes
/// (a test double's; on EKS leave it unset): read by the flow's environment and handed to the
/// plugin through `exec.env`, so glrunner's clients and helm's refresh in time for it.
pub const TOKEN_LIFETIME_ENV: &str = "GLRUNNER_EKS_TOKEN_LIFETIME_SECONDS";

/// The `apiVersion` of the plugin's ExecCredential: `client.authentication.k8s.io/v1`, GA since
/// Kubernetes 1.22 (client-go and kube-rs both speak it; v1 requires `interactiveMode`).
pub const EXEC_CREDENTIAL_API_VERSION: &str = "client.authentication.k8s.io/v1";

/// How long EKS accepts a token: "presigned STS urls are valid for 15 minutes after timestamp in
/// x-amz-date" (aws-iam-authenticator, pkg/token/token.go `presignedURLExpiration`; the
/// `X-Amz-Expires=60` of the URL is ignored by STS for this).
pub const EKS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The lifetime `value` of [`TOKEN_LIFETIME_ENV`] names: whole seconds, at least 5 and at most
/// EKS's 15 minutes (a longer one would make glrunner keep tokens EKS already refuses).
pub fn parse_token_lifetime(value: &str) -> Result<Duration> {
    let max = EKS_TOKEN_LIFETIME.as_secs();
    match value.trim().parse::<u64>() {
        Ok(seconds) if (5..=max).contains(&seconds) => Ok(Duration::from_secs(seconds)),
        _ => Err(Error::invalid(
            TOKEN_LIFETIME_ENV,
            format!(
                "{value:?} is not a token lifetime: whole seconds from 5 to {max} (EKS accepts a \
                 token for {max} s; unset it on EKS)"
            ),
        )),
    }
}

/// [`TOKEN_LIFETIME_ENV`] from the process environment: EKS's 15 minutes when unset.
pub fn token_lifetime_from_env() -> Result<Duration> {
    match std::env::var(TOKEN_LIFETIME_ENV) {
        Ok(value) if !value.trim().is_empty() => parse_token_lifetime(&value),
        _ => Ok(EKS_TOKEN_LIFETIME),
    }
}

/// The exec credential plugin helm runs for an EKS cluster: a glrunner binary (the running one,
/// unless an embedder names another that dispatches [`EXEC_CREDENTIAL_ENV`]) that signs a token
/// with glrunner's own generator and prints it as an ExecCredential. No aws CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlugin {
    /// The program client-go runs (an absolute path: client-go looks a bare name up on PATH).
    pub program: std::path::PathBuf,
    /// The Region the tokens are signed for.
    pub region: String,
    /// How long the apiserver accepts a token ([`EKS_TOKEN_LIFETIME`] on EKS).
    pub token_lifetime: Duration,
}

impl ExecPlugin {
    /// The kubeconfig `exec` entry for `cluster`. Per the client-go credential plugins doc
    /// (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins>):
    /// `interactiveMode: Never` (helm runs without a terminal; the plugin never prompts),
    /// `provideClusterInfo: false` (the plugin needs the cluster's EKS name, which is not in the
    /// server URL, so it comes through `env`), and no `args`: the switch is an environment
    /// variable, so no flag of any glrunner binary is taken. The entry holds no secret: the
    /// plugin loads AWS credentials through the standard chain, as glrunner did.
    pub fn exec_entry(&self, cluster: &str) -> serde_json::Value {
        let mut env = vec![
            json!({ "name": EXEC_CREDENTIAL_ENV, "value": "1" }),
            json!({ "name": EXEC_CLUSTER_ENV, "value": cluster }),
            json!({ "name": EXEC_REGION_ENV, "value": self.region }),
        ];
        if self.token_lifetime != EKS_TOKEN_LIFETIME {
            env.push(json!({ "name": TOKEN_LIFETIME_ENV, "value": self.token_lifetime.as_secs().to_string() }));
        }
        json!({
            "apiVersion": EXEC_CREDENTIAL_API_VERSION,
            "command": self.program.display().to_string(),
            "env": env,
            "interactiveMode": "Never",
            "provideClusterInfo": false
        })
    }
}

/// The kubeconfig helm reads for an EKS cluster: its user is [`ExecPlugin`], so client-go signs a
/// new token whenever the last one's `expirationTimestamp` has passed, however long helm's
/// `--wait` lasts. It holds no token and no secret; it lives in its own private temporary
/// directory (the file mode 0600), both removed when this value is dropped.
#[derive(Debug)]
pub struct HelmKubeconfig {
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl HelmKubeconfig {
    /// Writes the kubeconfig for `access` with `plugin` as its user.
    pub fn new(access: &ClusterAccess, plugin: &ExecPlugin) -> Result<Self> {
        let err = |e: std::io::Error| Error::State {
            path: std::env::temp_dir().display().to_string(),
            message: format!("cannot write helm's temporary kubeconfig: {e}"),
        };
        let dir = tempfile::Builder::new()
            .prefix("glrunner-helm-")
            .tempdir()
            .map_err(err)?;
        // Readable by the owner only, like the file (tempfile leaves a directory at the umask).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        let path = dir.path().join("kubeconfig");
        write_private(&path, render_exec(access, plugin).as_bytes()).map_err(err)?;
        Ok(Self { dir, path })
    }

    /// Where the kubeconfig is, while this value lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The private directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The text of [`HelmKubeconfig`]: `access`'s endpoint and CA, `plugin` as the user.
pub fn render_exec(access: &ClusterAccess, plugin: &ExecPlugin) -> String {
    let name = if access.arn.is_empty() {
        access.name.clone()
    } else {
        access.arn.clone()
    };
    let mut cluster = json!({ "server": access.endpoint });
    if !access.certificate_authority.trim().is_empty() {
        cluster["certificate-authority-data"] = json!(access.certificate_authority.trim());
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": cluster }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
        "current-context": name,
        "preferences": {},
        "users": [{ "name": name, "user": { "exec": plugin.exec_entry(&access.name) } }]
    });
    serde_norway::to_string(&config).expect("a JSON value always serialises to YAML")
}

/// The ExecCredential the plugin prints for `token`: `status.token` and
/// `status.expirationTimestamp` (RFC 3339). client-go caches the token until that time (or a
/// 401), then runs the plugin again; kube-rs refreshes 60 s before it. Held as a secret: it
/// carries the token.
pub fn exec_credential(token: &EksToken) -> SecretString {
    // Whole seconds, rounded down: never later than the token's own end.
    let expires = jiff::Timestamp::try_from(token.expires_at)
        .and_then(|t| jiff::Timestamp::from_second(t.as_second()))
        .map(|t| t.to_string())
        .unwrap_or_default();
    let credential = json!({
        "apiVersion": EXEC_CREDENTIAL_API_VERSION,
        "kind": "ExecCredential",
        "status": { "expirationTimestamp": expires, "token": token.expose() }
    });
    SecretString::from(credential.to_string())
}

/// An EKS bearer token (`k8s-aws-v1.…`), held as a [`SecretString`]: Debug redacts it and
/// it is zeroed on drop.
#[derive(Debug, Clone)]
pub struct EksToken {
    token: SecretString,
    /// When the token stops being used: 14 minutes after signing (tokens live 15; one minute of
    /// margin, as `aws eks get-token` advertises), or when the credentials that signed it
    /// expire, whichever is first (a pre-signed request is refused once its session credentials
    /// have expired). With a shorter lifetime ([`EksTokenGenerator::with_lifetime`]) the margin
    /// is a fifth of it.
    pub expires_at: SystemTime,
}

impl EksToken {
    /// The token, for an `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        self.token.expose_secret()
    }
}

/// Generates EKS tokens the way `aws eks get-token` does: a presigned STS GetCallerIdentity
/// URL carrying the `x-k8s-aws-id: <cluster>` header, base64url-encoded after `k8s-aws-v1.`.
#[derive(Debug, Clone)]
pub struct EksTokenGenerator {
    credentials: SharedCredentialsProvider,
    region: String,
    lifetime: Duration,
}

/// How long before a token's end glrunner stops using it: a minute for EKS's 15 (as the aws CLI
/// and aws-iam-authenticator do), a fifth of a shorter lifetime.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    TOKEN_REFRESH_MARGIN.min(lifetime / 5)
}

impl EksTokenGenerator {
    /// From a loaded SDK configuration (credentials + region).
    pub fn new(config: &aws_config::SdkConfig) -> Result<Self> {
        let credentials = config.credentials_provider().ok_or_else(|| Error::PermissionDenied {
            action: "generate EKS token".into(),
            message: "no AWS credentials configured; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".into(),
        })?;
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
            Error::invalid(
                "region",
                "no AWS region configured; pass --region or set AWS_REGION",
            )
        })?;
        Ok(Self {
            credentials,
            region,
            lifetime: EKS_TOKEN_LIFETIME,
        })
    }

    /// From an explicit credentials provider and region.
    pub fn from_parts(credentials: SharedCredentialsProvider, region: impl Into<String>) -> Self {
        Self {
            credentials,
            region: region.into(),
            lifetime: EKS_TOKEN_LIFETIME,
        }
    }

    /// Tokens the apiserver accepts for `lifetime` instead of EKS's 15 minutes (a test double's;
    /// see [`TOKEN_LIFETIME_ENV`]); never longer than EKS's.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.min(EKS_TOKEN_LIFETIME);
        self
    }

    /// The Region tokens are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// How long the apiserver accepts a token.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A fresh token for `cluster`, signed now.
    pub async fn token(&self, cluster: &str) -> Result<EksToken> {
        let credentials = self.load_credentials().await?;
        self.token_at(cluster, credentials, SystemTime::now())
    }

    async fn load_credentials(&self) -> Result<aws_credential_types::Credentials> {
        self.credentials
            .provide_credentials()
            .await
            .map_err(|e| Error::PermissionDenied {
                action: "generate EKS token".into(),
                message: format!("cannot load AWS credentials: {e}"),
            })
    }

    /// Deterministic signing at a given time (for tests).
    pub fn token_at(
        &self,
        cluster: &str,
        credentials: aws_credential_types::Credentials,
        now: SystemTime,
    ) -> Result<EksToken> {
        use aws_sigv4::http_request::{
            SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
        };
        use aws_sigv4::sign::v4;

        let usable_until = now + self.lifetime - refresh_margin(self.lifetime);
        let expires_at = credentials
            .expiry()
            .map_or(usable_until, |expiry| expiry.min(usable_until));
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(60));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| Error::Backend {
                action: "sign EKS token".into(),
                backend: "sts",
                source: Box::new(e),
            })?
            .into();
        let url = format!(
            "https://sts.{}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            self.region
        );
        let headers = [("x-k8s-aws-id", cluster)];
        let signable =
            SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
                .map_err(|e| Error::Backend {
                    action: "sign EKS token".into(),
                    backend: "sts",
                    source: Box::new(e),
                })?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| Error::Backend {
                action: "sign EKS token".into(),
                backend: "sts",
                source: Box::new(e),
            })?
            .into_parts();
        let mut request = http::Request::builder()
            .method("GET")
            .uri(&url)
            .body(())
            .expect("static request parts are valid");
        instructions.apply_to_request_http1x(&mut request);
        let presigned = request.uri().to_string();
        let token = format!(
            "k8s-aws-v1.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned)
        );
        Ok(EksToken {
            token: SecretString::from(token),
            expires_at,
        })
    }
}

/// How long before its expiry a cached EKS token is replaced by a fresh one (for EKS's 15-minute
/// tokens; [`refresh_margin`] for shorter ones).
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// EKS tokens for one cluster, signed once and reused until [`refresh_margin`] before they
/// expire: the one token cache that every Kubernetes client of a run shares (the root package
/// hands it to the janitor's pod client and to the runner-token Secrets client).
#[derive(Debug)]
pub struct EksTokenCache {
    generator: EksTokenGenerator,
    cluster: String,
    cached: tokio::sync::Mutex<Option<EksToken>>,
}

impl EksTokenCache {
    /// A cache of `generator`'s tokens for `cluster`.
    pub fn new(generator: EksTokenGenerator, cluster: impl Into<String>) -> Self {
        Self {
            generator,
            cluster: cluster.into(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The cluster the tokens are for.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The cached token while it has more than [`refresh_margin`] left (of its own 15
    /// minutes and of the credentials that signed it), else a fresh one.
    pub async fn token(&self) -> Result<EksToken> {
        self.token_at(SystemTime::now()).await
    }

    /// [`EksTokenCache::token`] as of `now` (for tests).
    pub async fn token_at(&self, now: SystemTime) -> Result<EksToken> {
        let margin = refresh_margin(self.generator.lifetime);
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && now + margin < token.expires_at
        {
            return Ok(token.clone());
        }
        let credentials = self.generator.load_credentials().await?;
        let token = self.generator.token_at(&self.cluster, credentials, now)?;
        *cached = Some(token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> ClusterAccess {
        ClusterAccess {
            name: "demo".into(),
            arn: "arn:aws:eks:us-east-1:123456789012:cluster/demo".into(),
            endpoint: "https://ABC.gr7.us-east-1.eks.amazonaws.com".into(),
            certificate_authority: "Q0E=".into(),
            fargate_profiles: Vec::new(),
            oidc_issuer: None,
        }
    }

    #[test]
    fn kubeconfig_uses_exec_get_token_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.kubeconfig");
        write(&path, &access(), "us-east-1", None).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let parsed: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            parsed["current-context"],
            "arn:aws:eks:us-east-1:123456789012:cluster/demo"
        );
        assert_eq!(
            parsed["clusters"][0]["cluster"]["server"],
            "https://ABC.gr7.us-east-1.eks.amazonaws.com"
        );
        let args: Vec<&str> = parsed["users"][0]["user"]["exec"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--region",
                "us-east-1",
                "eks",
                "get-token",
                "--cluster-name",
                "demo",
                "--output",
                "json"
            ]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[tokio::test]
    async fn token_cache_reuses_a_token_until_a_minute_before_it_expires() {
        let creds =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let generator =
            EksTokenGenerator::from_parts(SharedCredentialsProvider::new(creds), "us-east-1");
        let cache = EksTokenCache::new(generator, "demo");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = cache.token_at(t0).await.unwrap();
        assert_eq!(first.expires_at, t0 + Duration::from_secs(14 * 60));
        let minute = Duration::from_secs(60);
        let reused = cache.token_at(t0 + 12 * minute).await.unwrap();
        assert_eq!(reused.expose(), first.expose());
        // Within the last minute before expiry: signed afresh (another X-Amz-Date).
        let renewed = cache
            .token_at(t0 + 13 * minute + Duration::from_secs(1))
            .await
            .unwrap();
        assert_ne!(renewed.expose(), first.expose());
        assert_eq!(
            renewed.expires_at,
            t0 + 27 * minute + Duration::from_secs(1)
        );
    }

    #[tokio::test]
    async fn a_cached_token_does_not_outlive_the_credentials_that_signed_it() {
        // An assumed-role session with five minutes left: STS refuses what it signed once the
        // session has expired, so the token is good for those five minutes at most.
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let minute = Duration::from_secs(60);
        let creds = aws_credential_types::Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("session".into()),
            Some(t0 + 5 * minute),
            "test",
        );
        let generator =
            EksTokenGenerator::from_parts(SharedCredentialsProvider::new(creds), "us-east-1");
        let cache = EksTokenCache::new(generator, "demo");
        let first = cache.token_at(t0).await.unwrap();
        assert_eq!(first.expires_at, t0 + 5 * minute);
        // Within the refresh margin of the credentials' end: not the old token any more.
        let later = cache.token_at(t0 + 4 * minute + minute / 2).await.unwrap();
        assert_ne!(later.expose(), first.expose());
    }

    #[test]
    fn kubeconfig_carries_the_profile_for_the_aws_cli() {
        let text = render(&access(), "us-east-1", Some("ci-admin"));
        let parsed: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            parsed["users"][0]["user"]["exec"]["env"][0],
            serde_json::json!({ "name": "AWS_PROFILE", "value": "ci-admin" })
        );
        let plain: serde_json::Value =
            serde_norway::from_str(&render(&access(), "us-east-1", None)).unwrap();
        assert!(plain["users"][0]["user"]["exec"].get("env").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_leftover_with_a_loose_mode_still_ends_up_0600_and_no_temp_file_stays() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.kubeconfig");
        // An earlier file (or the old fixed-name temp file) readable by everyone.
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(path.with_extension("tmp"), "stale").unwrap();
        fs::set_permissions(
            path.with_extension("tmp"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        write(&path, &access(), "us-east-1", None).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(".glrunner-")),
            "{names:?}"
        );
    }

    fn plugin(lifetime: Duration) -> ExecPlugin {
        ExecPlugin {
            program: "/opt/ci/bin/full_flow".into(),
            region: "eu-west-1".into(),
            token_lifetime: lifetime,
        }
    }

    #[test]
    fn helm_kubeconfig_runs_glrunner_itself_holds_no_secret_and_goes_away() {
        let kubeconfig = HelmKubeconfig::new(&access(), &plugin(EKS_TOKEN_LIFETIME)).unwrap();
        let path = kubeconfig.path().to_path_buf();
        let dir = kubeconfig.dir().to_path_buf();
        let text = fs::read_to_string(&path).unwrap();
        let parsed: serde_json::Value = serde_norway::from_str(&text).unwrap();
        let user = &parsed["users"][0]["user"];
        assert_eq!(
            user.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["exec"],
            "no token, tokenFile, client key or password: {text}"
        );
        let exec = &user["exec"];
        assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(exec["command"], "/opt/ci/bin/full_flow");
        assert_eq!(exec["interactiveMode"], "Never");
        assert_eq!(exec["provideClusterInfo"], false);
        assert!(exec.get("args").is_none(), "{exec}");
        let env: Vec<(&str, &str)> = exec["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            env,
            [
                ("GLRUNNER_EXEC_CREDENTIAL", "1"),
                ("GLRUNNER_EKS_CLUSTER", "demo"),
                ("AWS_REGION", "eu-west-1")
            ],
            "EKS's own lifetime is not written"
        );
        for secret in [
            "k8s-aws-v1",
            "AKID",
            "aws_secret",
            "AWS_SECRET",
            "AWS_SESSION_TOKEN",
            "get-token",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                fs::metadata(&dir).unwrap().permissions().mode() & 0o077,
                0,
                "private dir"
            );
        }
        drop(kubeconfig);
        assert!(
            !path.exists() && !dir.exists(),
            "removed with its directory"
        );
    }

    #[test]
    fn a_shorter_lifetime_reaches_the_plugin_through_its_env() {
        let text = render_exec(&access(), &plugin(Duration::from_secs(12)));
        let parsed: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert!(
            parsed["users"][0]["user"]["exec"]["env"]
                .as_array()
                .unwrap()
                .contains(&json!({ "name": "GLRUNNER_EKS_TOKEN_LIFETIME_SECONDS", "value": "12" })),
            "{text}"
        );
    }

    #[test]
    fn exec_credential_carries_the_token_and_when_to_run_the_plugin_again() {
        let creds =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let generator = EksTokenGenerator::from_parts(
            SharedCredentialsProvider::new(creds.clone()),
            "us-east-1",
        );
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_700);
        let token = generator.token_at("demo", creds, t0).unwrap();
        let credential: serde_json::Value =
            serde_json::from_str(exec_credential(&token).expose_secret()).unwrap();
        assert_eq!(credential["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(credential["kind"], "ExecCredential");
        assert_eq!(credential["status"]["token"], token.expose());
        // 14 minutes after signing, rounded down to the second (never after the token's end).
        assert_eq!(
            credential["status"]["expirationTimestamp"],
            "2023-11-14T22:27:20Z"
        );
        assert!(!format!("{:?}", exec_credential(&token)).contains("k8s-aws-v1"));
    }

    #[tokio::test]
    async fn a_shorter_lifetime_shortens_the_tokens_and_the_margin() {
        let creds =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let generator =
            EksTokenGenerator::from_parts(SharedCredentialsProvider::new(creds), "us-east-1")
                .with_lifetime(Duration::from_secs(10));
        assert_eq!(generator.lifetime(), Duration::from_secs(10));
        let cache = EksTokenCache::new(generator, "demo");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = Duration::from_secs;
        let first = cache.token_at(t0).await.unwrap();
        // Used for 8 of its 10 seconds (a fifth of margin), replaced 2 s before that.
        assert_eq!(first.expires_at, t0 + s(8));
        assert_eq!(
            cache.token_at(t0 + s(5)).await.unwrap().expose(),
            first.expose()
        );
        assert_ne!(
            cache.token_at(t0 + s(7)).await.unwrap().expose(),
            first.expose()
        );
        // Never longer than EKS's own.
        let long = EksTokenGenerator::from_parts(
            SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
                "A", "B", None, None, "t",
            )),
            "us-east-1",
        )
        .with_lifetime(s(3600));
        assert_eq!(long.lifetime(), EKS_TOKEN_LIFETIME);
    }

    #[test]
    fn the_lifetime_setting_is_whole_seconds_up_to_eks_s_own() {
        assert_eq!(parse_token_lifetime("12").unwrap(), Duration::from_secs(12));
        assert_eq!(parse_token_lifetime("900").unwrap(), EKS_TOKEN_LIFETIME);
        for bad in ["901", "0", "4", "10s", "", "-3"] {
            let e = parse_token_lifetime(bad).unwrap_err().to_string();
            assert!(
                e.contains("GLRUNNER_EKS_TOKEN_LIFETIME_SECONDS"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn token_is_a_presigned_get_caller_identity_bound_to_the_cluster() {
        let creds =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let generator = EksTokenGenerator::from_parts(
            SharedCredentialsProvider::new(creds.clone()),
            "us-east-1",
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = generator.token_at("demo", creds.clone(), now).unwrap();
        let encoded = token.expose().strip_prefix("k8s-aws-v1.").expect("prefix");
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap();
        assert!(
            url.starts_with(
                "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
            ),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Expires=60",
            "X-Amz-Date=20231114T221320Z",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
        assert!(
            url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
            "{url}"
        );
        // Same inputs sign the same; another cluster signs differently.
        assert_eq!(
            generator
                .token_at("demo", creds.clone(), now)
                .unwrap()
                .expose(),
            token.expose()
        );
        assert_ne!(
            generator.token_at("other", creds, now).unwrap().expose(),
            token.expose()
        );
        assert!(!format!("{token:?}").contains(encoded));
    }
}
