//! Kubeconfig for an EKS cluster, and a built-in EKS bearer-token generator (no aws CLI needed).

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials as _;
use aws_credential_types::provider::SharedCredentialsProvider;
use base64::Engine as _;
use serde_json::json;

use crate::error::{Error, Result};
use crate::resource::ClusterAccess;

/// Renders a kubeconfig whose user runs `aws eks get-token`, as `aws eks update-kubeconfig` writes it.
pub fn render(access: &ClusterAccess, region: &str) -> String {
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
        "users": [{ "name": name, "user": { "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["--region", region, "eks", "get-token", "--cluster-name", access.name, "--output", "json"],
            "interactiveMode": "IfAvailable",
            "provideClusterInfo": false
        }}}]
    });
    serde_norway::to_string(&config).expect("a JSON value always serialises to YAML")
}

/// Writes the kubeconfig atomically with mode 0600 (it names the cluster and how to get in).
pub fn write(path: &Path, access: &ClusterAccess, region: &str) -> Result<()> {
    let err = |message: String| Error::State {
        path: path.display().to_string(),
        message,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| err(format!("cannot create directory: {e}")))?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(render(access, region).as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| err(format!("cannot write kubeconfig: {e}")))
}

/// An EKS bearer token (`k8s-aws-v1.…`). Debug output never shows it.
#[derive(Clone)]
pub struct EksToken {
    token: String,
    /// When the token stops being accepted (tokens live 15 minutes; we report 14 to leave margin).
    pub expires_at: SystemTime,
}

impl EksToken {
    /// The token, for an `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Debug for EksToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksToken")
            .field("token", &"k8s-aws-v1.****")
            .field("expires_at", &self.expires_at)
            .finish()
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
            token,
            expires_at: now + Duration::from_secs(14 * 60),
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

    /// The cached token while it has more than [`TOKEN_REFRESH_MARGIN`] left, else a fresh one.
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
        }
    }

    #[test]
    fn kubeconfig_uses_exec_get_token_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.kubeconfig");
        write(&path, &access(), "us-east-1").unwrap();
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
