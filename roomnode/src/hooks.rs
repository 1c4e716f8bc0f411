//! The application's backend, asked before a member is admitted (the join
//! hook) and before a message is accepted (the publish hook): a signed
//! HTTP POST of JSON (`proto::hooks`), bounded by `--hook-timeout`. A
//! failed call (timeout, no answer, a non-2xx status, an answer that does
//! not read) counts as a refusal or a yes by `--hook-failure` (refusal by
//! default: the backend must say yes). Every call is counted by outcome
//! and timed (`roomnode_hook_calls_total`, `roomnode_hook_duration_seconds`).
//!
//! Nothing is cached: each join and each message is asked about.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, Request, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proto::hooks::{
    JoinAnswer, JoinRequest, PublishAnswer, PublishRequest, SIGNATURE_HEADER, signature,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{Config, HookFailure};
use crate::metrics::Metrics;

/// Longest answer body read from a hook.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The pooled HTTP client hook calls (the events feed's too) go through.
pub(crate) fn client(config: &Config) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.hooks.hook_timeout));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The key hook requests are signed with.
pub(crate) fn secret(config: &Config) -> Vec<u8> {
    config
        .hooks
        .hook_secret
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec())
        .unwrap_or_default()
}

/// The hooks a node calls; `None` parts are off.
pub(crate) struct Hooks {
    http: Client<HttpConnector, Full<Bytes>>,
    secret: Vec<u8>,
    timeout: Duration,
    failure: HookFailure,
    join: Option<String>,
    publish: Option<String>,
    /// Publish calls in flight, bounded.
    publishing: Semaphore,
    metrics: Arc<Metrics>,
}

/// What the backend said about a join or a message.
pub(crate) enum Verdict<A> {
    /// Its answer (which may still refuse).
    Answer(A),
    /// No usable answer, and `--hook-failure open`: go on as if allowed.
    FailedOpen,
    /// No usable answer, and `--hook-failure closed`: refuse, saying why.
    FailedClosed(String),
}

impl Hooks {
    /// The hooks of `config`; `None` when there are none.
    pub(crate) fn new(config: &Config, metrics: Arc<Metrics>) -> Option<Self> {
        if config.hooks.join_hook.is_none() && config.hooks.publish_hook.is_none() {
            return None;
        }
        Some(Self {
            http: client(config),
            secret: secret(config),
            timeout: config.hooks.hook_timeout,
            failure: config.hooks.hook_failure,
            join: config.hooks.join_hook.clone(),
            publish: config.hooks.publish_hook.clone(),
            publishing: Semaphore::new(config.publish_hook_concurrency),
            metrics,
        })
    }

    /// Whether joins are asked about.
    pub(crate) fn has_join(&self) -> bool {
        self.join.is_some()
    }

    /// Whether messages are asked about.
    pub(crate) fn has_publish(&self) -> bool {
        self.publish.is_some()
    }

    /// Asks the join hook (allowed when there is none).
    pub(crate) async fn join(&self, req: &JoinRequest) -> Verdict<JoinAnswer> {
        let Some(url) = &self.join else {
            return Verdict::FailedOpen;
        };
        let verdict = self.call("join", url, req).await;
        self.count("join", &verdict, |a: &JoinAnswer| a.allow);
        verdict
    }

    /// Asks the publish hook (allowed when there is none), at most
    /// `--publish-hook-concurrency` calls at once.
    pub(crate) async fn publish(&self, req: &PublishRequest) -> Verdict<PublishAnswer> {
        let Some(url) = &self.publish else {
            return Verdict::FailedOpen;
        };
        let _slot = self.publishing.acquire().await;
        let verdict = self.call("publish", url, req).await;
        self.count("publish", &verdict, |a: &PublishAnswer| a.allow);
        verdict
    }

    fn count<A>(&self, hook: &str, verdict: &Verdict<A>, allowed: impl Fn(&A) -> bool) {
        let outcome = match verdict {
            Verdict::Answer(a) if allowed(a) => "allowed",
            Verdict::Answer(_) => "refused",
            // Failures are counted by kind in `call`.
            Verdict::FailedOpen | Verdict::FailedClosed(_) => return,
        };
        self.metrics
            .hook_calls
            .with_label_values(&[hook, outcome])
            .inc();
    }

    /// POSTs `body` to `url`, signed; its answer, or the failure policy.
    async fn call<B: Serialize, A: DeserializeOwned>(
        &self,
        hook: &'static str,
        url: &str,
        body: &B,
    ) -> Verdict<A> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.post(url, body)).await;
        self.metrics
            .hook_duration
            .with_label_values(&[hook])
            .observe(started.elapsed().as_secs_f64());
        let failure = match result {
            Ok(Ok(answer)) => return Verdict::Answer(answer),
            Ok(Err(kind)) => kind,
            Err(_) => "timeout",
        };
        self.metrics
            .hook_calls
            .with_label_values(&[hook, failure])
            .inc();
        tracing::warn!(hook, url, failure, "hook call failed");
        match self.failure {
            HookFailure::Open => Verdict::FailedOpen,
            HookFailure::Closed => {
                Verdict::FailedClosed(format!("the {hook} hook failed ({failure}); try again"))
            }
        }
    }

    async fn post<B: Serialize, A: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<A, &'static str> {
        let json = serde_json::to_vec(body).expect("hook bodies serialize");
        let req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, &json))
            .body(Full::new(Bytes::from(json)))
            .map_err(|_| "unreachable")?;
        let resp = self.http.request(req).await.map_err(|_| "unreachable")?;
        if !resp.status().is_success() {
            return Err("status");
        }
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|_| "unreachable")?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|_| "invalid_answer")
    }
}
