//! The async client: signed GET requests, JSON answers, pagination, async-job
//! polling, per-request timeouts and bounded retries for reads.

use crate::error::Error;
use crate::sign;
use crate::types::{ClusterInfo, Configuration, HostInfo, Pod, Zone};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// API key and secret key. `Debug` shows neither in full.
#[derive(Clone)]
pub struct Credentials {
    api_key: String,
    secret_key: String,
}

impl Credentials {
    /// Credentials of an admin account (every HA command is admin-only).
    pub fn new(api_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials {
            api_key: api_key.into(),
            secret_key: secret_key.into(),
        }
    }
    /// The API key (not a secret: it is sent in every request).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.api_key.chars().take(6).collect();
        f.debug_struct("Credentials")
            .field("api_key", &format_args!("{shown}…"))
            .field("secret_key", &format_args!("<redacted>"))
            .finish()
    }
}

/// Client settings. [`ClientConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http(s)://host:port/client/api`.
    pub endpoint: String,
    /// Keys.
    pub credentials: Credentials,
    /// Extra trusted CA certificates (PEM). The system store is always used
    /// too; certificate verification is never disabled.
    pub ca_file: Option<PathBuf>,
    /// Timeout of one HTTP request (connect + answer). Default 10 s.
    pub request_timeout: Duration,
    /// Extra attempts of a read after a transport error. Default 2.
    pub read_retries: u32,
    /// Pause before a retry (doubled each time). Default 500 ms.
    pub retry_backoff: Duration,
    /// `pagesize` of list calls. Default 500.
    pub page_size: u32,
    /// How far ahead `expires` is set (`signatureversion=3`). Default 300 s.
    pub expires_after: Duration,
    /// Pause between `queryAsyncJobResult` polls. Default 1 s.
    pub job_poll_interval: Duration,
    /// Give up waiting for an async job after this long. Default 300 s.
    pub job_timeout: Duration,
}

impl ClientConfig {
    /// Settings with the defaults.
    pub fn new(endpoint: impl Into<String>, credentials: Credentials) -> Self {
        ClientConfig {
            endpoint: endpoint.into(),
            credentials,
            ca_file: None,
            request_timeout: Duration::from_secs(10),
            read_retries: 2,
            retry_backoff: Duration::from_millis(500),
            page_size: 500,
            expires_after: Duration::from_secs(300),
            job_poll_interval: Duration::from_secs(1),
            job_timeout: Duration::from_secs(300),
        }
    }
}

/// Request parameters, in insertion order; a repeated name replaces the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Params(Vec::new())
    }
    /// Adds (or replaces) a parameter.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }
    /// Adds (or replaces) a parameter.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
    /// The pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// A CloudStack API client. Cheap to clone (shares its connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    cfg: ClientConfig,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("cfg", &self.cfg).finish()
    }
}

impl Client {
    /// Builds the client (rustls, system CA store plus `ca_file`).
    pub fn new(cfg: ClientConfig) -> Result<Self, Error> {
        let url = reqwest::Url::parse(&cfg.endpoint)
            .map_err(|e| Error::Config(format!("endpoint {:?}: {e}", cfg.endpoint)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "endpoint {:?}: scheme must be http or https",
                cfg.endpoint
            )));
        }
        if url.query().is_some() {
            return Err(Error::Config(format!(
                "endpoint {:?}: must not carry a query",
                cfg.endpoint
            )));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("hactl-kvm/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "CA file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client { http, cfg })
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The signed query string for `command` with `params` (fresh `expires`).
    fn signed_query(&self, command: &str, params: &Params) -> String {
        let mut all: Vec<(String, String)> = params
            .pairs()
            .iter()
            .filter(|(n, _)| {
                ![
                    "command",
                    "response",
                    "apikey",
                    "signature",
                    "signatureversion",
                    "expires",
                ]
                .contains(&n.to_ascii_lowercase().as_str())
            })
            .cloned()
            .collect();
        all.push(("command".into(), command.into()));
        all.push(("response".into(), "json".into()));
        all.push(("apikey".into(), self.cfg.credentials.api_key.clone()));
        all.push(("signatureversion".into(), "3".into()));
        all.push((
            "expires".into(),
            sign::expires_string(SystemTime::now() + self.cfg.expires_after),
        ));
        let signature = sign::signature(&self.cfg.credentials.secret_key, &all);
        let mut q = String::new();
        for (n, v) in &all {
            q.push_str(&sign::encode_value(n));
            q.push('=');
            q.push_str(&sign::encode_value(v));
            q.push('&');
        }
        q.push_str("signature=");
        q.push_str(&sign::encode_value(&signature));
        q
    }

    /// One request, no retry. Returns the body of `<command>response`.
    async fn request_once(&self, command: &str, params: &Params) -> Result<Value, Error> {
        let url = format!(
            "{}?{}",
            self.cfg.endpoint,
            self.signed_query(command, params)
        );
        let names: Vec<&str> = params.pairs().iter().map(|(n, _)| n.as_str()).collect();
        tracing::debug!(command, params = ?names, "CloudStack request");
        let unreachable = |e: reqwest::Error| {
            let e = e.without_url();
            let mut detail = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                detail.push_str(": ");
                detail.push_str(&c.to_string());
                cause = c.source();
            }
            Error::Unreachable {
                command: command.to_string(),
                timed_out: e.is_timeout(),
                detail,
                source: e,
            }
        };
        let resp = self.http.get(url).send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(unreachable)?;
        parse_response(command, status, &body)
    }

    /// Calls any command once (no retry: safe for commands that change
    /// something). Returns the body of `<command>response`.
    pub async fn call(&self, command: &str, params: &Params) -> Result<Value, Error> {
        self.request_once(command, params).await
    }

    /// Calls a read-only command, retrying transport errors up to
    /// `read_retries` times with a doubling pause.
    pub async fn call_read(&self, command: &str, params: &Params) -> Result<Value, Error> {
        let mut pause = self.cfg.retry_backoff;
        let mut attempt = 0;
        loop {
            match self.request_once(command, params).await {
                Err(e) if e.is_transport() && attempt < self.cfg.read_retries => {
                    attempt += 1;
                    tracing::warn!(command, attempt, error = %e, "CloudStack read failed, retrying");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                }
                other => return other,
            }
        }
    }

    /// Every item of a list command: pages of `page_size` until `count`
    /// items are read (or a page comes back short). Items are de-duplicated
    /// by `id` (a listing may shift while it is paged).
    pub async fn list_all(
        &self,
        command: &str,
        params: &Params,
        item_key: &str,
    ) -> Result<Vec<Value>, Error> {
        let size = self.cfg.page_size.max(1);
        let mut items: Vec<Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut page = 1u32;
        loop {
            let p = params
                .clone()
                .with("page", page.to_string())
                .with("pagesize", size.to_string());
            let body = self.call_read(command, &p).await?;
            let count = match body.get("count") {
                None => 0,
                Some(c) => c.as_u64().ok_or_else(|| Error::Malformed {
                    command: command.into(),
                    detail: format!("count is not a number: {c}"),
                })?,
            };
            let got = match body.get(item_key) {
                None => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(other) => {
                    return Err(Error::Malformed {
                        command: command.into(),
                        detail: format!("{item_key} is not a list: {}", kind(other)),
                    })
                }
            };
            let n = got.len();
            for item in got {
                let id = item.get("id").and_then(Value::as_str).map(str::to_string);
                if id.map_or(true, |id| seen.insert(id)) {
                    items.push(item);
                }
            }
            if n < size as usize || items.len() as u64 >= count {
                return Ok(items);
            }
            // A server that keeps sending full pages past `count` is broken.
            if u64::from(page) > count / u64::from(size) + 2 {
                return Err(Error::Malformed {
                    command: command.into(),
                    detail: format!("pagination does not end ({page} pages, count {count})"),
                });
            }
            page += 1;
        }
    }

    async fn list_typed<T: DeserializeOwned>(
        &self,
        command: &str,
        params: &Params,
        item_key: &str,
    ) -> Result<Vec<T>, Error> {
        self.list_all(command, params, item_key)
            .await?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v).map_err(|e| Error::Malformed {
                    command: command.into(),
                    detail: format!("{item_key}: {e}"),
                })
            })
            .collect()
    }

    /// `listZones`.
    pub async fn list_zones(&self) -> Result<Vec<Zone>, Error> {
        self.list_typed("listZones", &Params::new(), "zone").await
    }

    /// `listPods`.
    pub async fn list_pods(&self) -> Result<Vec<Pod>, Error> {
        self.list_typed("listPods", &Params::new(), "pod").await
    }

    /// `listClusters`.
    pub async fn list_clusters(&self) -> Result<Vec<ClusterInfo>, Error> {
        self.list_typed("listClusters", &Params::new(), "cluster")
            .await
    }

    /// `listHosts type=Routing hypervisor=KVM`, with `clusterid` when given: one
    /// paged call per cluster round.
    pub async fn list_kvm_hosts(&self, cluster_id: Option<&str>) -> Result<Vec<HostInfo>, Error> {
        let mut p = Params::new()
            .with("type", "Routing")
            .with("hypervisor", "KVM");
        if let Some(c) = cluster_id {
            p.set("clusterid", c);
        }
        self.list_typed("listHosts", &p, "host").await
    }

    /// `listConfigurations name=...` (CloudStack matches names by substring).
    pub async fn list_configurations(&self, name: &str) -> Result<Vec<Configuration>, Error> {
        self.list_typed(
            "listConfigurations",
            &Params::new().with("name", name),
            "configuration",
        )
        .await
    }

    /// Polls `queryAsyncJobResult` until the job is done, bounded by
    /// `job_timeout`. Returns `jobresult` on success.
    pub async fn wait_for_job(&self, command: &str, jobid: &str) -> Result<Value, Error> {
        let start = tokio::time::Instant::now();
        loop {
            let body = self
                .call_read("queryAsyncJobResult", &Params::new().with("jobid", jobid))
                .await?;
            let status = body
                .get("jobstatus")
                .and_then(Value::as_u64)
                .ok_or_else(|| Error::Malformed {
                    command: "queryAsyncJobResult".into(),
                    detail: "no numeric jobstatus".into(),
                })?;
            match status {
                0 => {}
                1 => return Ok(body.get("jobresult").cloned().unwrap_or(Value::Null)),
                2 => {
                    let res = body.get("jobresult");
                    let errorcode = res
                        .and_then(|r| r.get("errorcode"))
                        .and_then(Value::as_u64)
                        .or_else(|| body.get("jobresultcode").and_then(Value::as_u64))
                        .unwrap_or(0) as u32;
                    let errortext = res
                        .and_then(|r| r.get("errortext"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    return Err(Error::JobFailed {
                        command: command.into(),
                        jobid: jobid.into(),
                        errorcode,
                        errortext,
                    });
                }
                other => {
                    return Err(Error::Malformed {
                        command: "queryAsyncJobResult".into(),
                        detail: format!("jobstatus {other}"),
                    })
                }
            }
            let waited = start.elapsed();
            if waited >= self.cfg.job_timeout {
                return Err(Error::JobTimeout {
                    command: command.into(),
                    jobid: jobid.into(),
                    waited,
                });
            }
            tokio::time::sleep(
                self.cfg
                    .job_poll_interval
                    .min(self.cfg.job_timeout - waited),
            )
            .await;
        }
    }

    /// Starts an async command (once, no retry) and waits for its job.
    pub async fn call_async(&self, command: &str, params: &Params) -> Result<Value, Error> {
        let body = self.call(command, params).await?;
        let jobid = body
            .get("jobid")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Malformed {
                command: command.into(),
                detail: "async command answered without a jobid".into(),
            })?
            .to_string();
        self.wait_for_job(command, &jobid).await
    }

    async fn host_job(&self, command: &str, host_uuid: &str) -> Result<HostInfo, Error> {
        let res = self
            .call_async(command, &Params::new().with("id", host_uuid))
            .await?;
        let host = res.get("host").cloned().ok_or_else(|| Error::Malformed {
            command: command.into(),
            detail: "job result has no host".into(),
        })?;
        serde_json::from_value(host).map_err(|e| Error::Malformed {
            command: command.into(),
            detail: format!("host: {e}"),
        })
    }

    /// `declareHostAsDegraded id=...` and its job: CloudStack marks the
    /// host's VMs stopped so VM-HA restarts them elsewhere. CloudStack
    /// requires the host to be Alert or Disconnected.
    pub async fn declare_host_as_degraded(&self, host_uuid: &str) -> Result<HostInfo, Error> {
        self.host_job("declareHostAsDegraded", host_uuid).await
    }

    /// `cancelHostAsDegraded id=...` and its job: back to Enabled.
    pub async fn cancel_host_as_degraded(&self, host_uuid: &str) -> Result<HostInfo, Error> {
        self.host_job("cancelHostAsDegraded", host_uuid).await
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Interprets one HTTP answer: the `<command>response` object, or the error
/// it carries.
pub(crate) fn parse_response(command: &str, status: u16, body: &[u8]) -> Result<Value, Error> {
    let malformed = |detail: String| Error::Malformed {
        command: command.into(),
        detail,
    };
    let json: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let excerpt: String = String::from_utf8_lossy(body).chars().take(200).collect();
            if status == 401 {
                return Err(Error::AuthRefused {
                    command: command.into(),
                    errorcode: 401,
                    errortext: excerpt,
                });
            }
            return Err(malformed(format!(
                "HTTP {status}, not JSON ({e}): {excerpt:?}"
            )));
        }
    };
    let key = format!("{}response", command.to_ascii_lowercase());
    let inner = json
        .get(&key)
        .or_else(|| json.get("errorresponse"))
        .or_else(|| {
            // Some errors are answered under another command's name.
            json.as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.values().next())
                .filter(|v| v.get("errorcode").is_some())
        })
        .cloned()
        .ok_or_else(|| malformed(format!("HTTP {status}, no \"{key}\" object")))?;
    if let Some(code) = inner.get("errorcode") {
        let errorcode = code
            .as_u64()
            .ok_or_else(|| malformed(format!("errorcode is {}", kind(code))))?
            as u32;
        let errortext = inner
            .get("errortext")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if errorcode == 401 || errorcode == 432 {
            return Err(Error::AuthRefused {
                command: command.into(),
                errorcode,
                errortext,
            });
        }
        return Err(Error::Api {
            command: command.into(),
            errorcode,
            cserrorcode: inner
                .get("cserrorcode")
                .and_then(Value::as_u64)
                .map(|c| c as u32),
            errortext,
        });
    }
    if !(200..300).contains(&status) {
        return Err(malformed(format!("HTTP {status} without an errorcode")));
    }
    if !inner.is_object() {
        return Err(malformed(format!("\"{key}\" is {}", kind(&inner))));
    }
    Ok(inner)
}
