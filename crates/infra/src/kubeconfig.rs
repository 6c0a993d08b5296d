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

/// A kubeconfig for one cluster that carries a fresh bearer token instead of an exec entry,
/// in a private temporary file (mode 0600) removed when this value is dropped. For tools such
/// as helm that read a kubeconfig: no aws CLI needed, and the token never appears in argv.
/// Tokens live 15 minutes: make one per call.
#[derive(Debug)]
pub struct TokenKubeconfig {
    file: tempfile::NamedTempFile,
}

impl TokenKubeconfig {
    /// Writes the kubeconfig for `access` with `token` into a new private temporary file.
    pub fn new(access: &ClusterAccess, token: &EksToken) -> Result<Self> {
        let name = if access.arn.is_empty() {
            access.name.clone()
        } else {
            access.arn.clone()
        };
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": name, "cluster": { "server": access.endpoint, "certificate-authority-data": access.certificate_authority } }],
            "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
            "current-context": name,
            "preferences": {},
            "users": [{ "name": name, "user": { "token": token.expose() } }]
        });
        let text =
            serde_norway::to_string(&config).expect("a JSON value always serialises to YAML");
        let err = |e: std::io::Error| Error::State {
            path: std::env::temp_dir().display().to_string(),
            message: format!("cannot write a temporary kubeconfig: {e}"),
        };
        let mut file = tempfile::Builder::new()
            .prefix("glrunner-kubeconfig-")
            .tempfile()
            .map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        file.as_file().sync_all().map_err(err)?;
        Ok(Self { file })
    }

    /// Where the kubeconfig is, while this value lives.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// An EKS bearer token (`k8s-aws-v1.…`), held as a [`SecretString`]: Debug redacts it and
/// it is zeroed on drop.
#[derive(Debug, Clone)]
pub struct EksToken {
    token: SecretString,
    /// When the token stops being accepted: 14 minutes after signing (tokens live 15; one
    /// minute of margin), or when the credentials that signed it expire, whichever is first (a
    /// pre-signed request is refused once its session credentials have expired).
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
        })
    }

    /// From an explicit credentials provider and region.
    pub fn from_parts(credentials: SharedCredentialsProvider, region: impl Into<String>) -> Self {
        Self {
            credentials,
            region: region.into(),
        }
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

        let lifetime = now + Duration::from_secs(14 * 60);
        let expires_at = credentials
            .expiry()
            .map_or(lifetime, |expiry| expiry.min(lifetime));
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

/// How long before its expiry a cached EKS token is replaced by a fresh one.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// EKS tokens for one cluster, signed once and reused until [`TOKEN_REFRESH_MARGIN`] before they
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

    /// The cached token while it has more than [`TOKEN_REFRESH_MARGIN`] left (of its own 15
    /// minutes and of the credentials that signed it), else a fresh one.
    pub async fn token(&self) -> Result<EksToken> {
        self.token_at(SystemTime::now()).await
    }

    /// [`EksTokenCache::token`] as of `now` (for tests).
    pub async fn token_at(&self, now: SystemTime) -> Result<EksToken> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && now + TOKEN_REFRESH_MARGIN < token.expires_at
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

    #[test]
    fn token_kubeconfig_is_private_and_goes_away() {
        let creds =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let generator = EksTokenGenerator::from_parts(
            SharedCredentialsProvider::new(creds.clone()),
            "us-east-1",
        );
        let token = generator
            .token_at(
                "demo",
                creds,
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            )
            .unwrap();
        let kubeconfig = TokenKubeconfig::new(&access(), &token).unwrap();
        let path = kubeconfig.path().to_path_buf();
        let parsed: serde_json::Value =
            serde_norway::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(parsed["users"][0]["user"]["token"], token.expose());
        assert!(
            parsed["users"][0]["user"].get("exec").is_none(),
            "no aws CLI"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(!format!("{kubeconfig:?}").contains(token.expose()));
        drop(kubeconfig);
        assert!(!path.exists());
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
