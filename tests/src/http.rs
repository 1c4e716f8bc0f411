//! [`Http`]: a JSON HTTP client for tests against one base URL. It never
//! follows redirects (a test sees the 307 and its `Location`) and bounds
//! every request.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, redirect};
use serde_json::Value;

/// Bound on one request, connect included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as JSON: `Null` when empty, a JSON string holding the text
    /// when the body is not JSON.
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// Asserts this is the JSON error `code` with `status`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(code)),
            "expected {status} {code}, got {} {}",
            self.status,
            self.text
        );
    }

    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for one server, e.g. `Http::new("http://127.0.0.1:8080")`.
#[derive(Debug, Clone)]
pub struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    /// A client for `base` (scheme, host and port, no trailing path).
    pub fn new(base: impl Into<String>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build an HTTP client");
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            client,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` under the base; a full `http(s)://` URL is used as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request; `Err` only when no HTTP answer came (refused,
    /// reset, timed out), so tests can assert on an unreachable server.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        Self::reply(request.send().await?).await
    }

    /// A request with extra headers, a raw body and its own bound (a long
    /// poll outlasts [`REQUEST_TIMEOUT`]), which the JSON calls cannot
    /// send; panics if there is no answer.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
        timeout: Duration,
    ) -> Reply {
        let what = format!("{method} {}", self.url(path));
        let mut request = self.client.request(method, self.url(path)).timeout(timeout);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let answer = match request.send().await {
            Ok(response) => Self::reply(response).await,
            Err(e) => Err(e),
        };
        answer.unwrap_or_else(|e| panic!("{what}: no answer: {e}"))
    }

    async fn reply(response: reqwest::Response) -> Result<Reply, reqwest::Error> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        Ok(Reply {
            status,
            headers,
            body,
            text,
        })
    }

    async fn must(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let what = format!("{method} {}", self.url(path));
        self.send(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"))
    }

    /// `method path` with a bearer `token` and a JSON `body`, each if
    /// given; panics if there is no answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let what = format!("{method} {}", self.url(path));
        let mut request = self.client.request(method, self.url(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = match request.send().await {
            Ok(response) => Self::reply(response).await,
            Err(e) => Err(e),
        };
        answer.unwrap_or_else(|e| panic!("{what}: no answer: {e}"))
    }

    /// `GET path`; panics if there is no answer.
    pub async fn get(&self, path: &str) -> Reply {
        self.must(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body; panics if there is no answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.must(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body; panics if there is no answer.
    pub async fn put_json(&self, path: &str, body: &Value) -> Reply {
        self.must(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`; panics if there is no answer.
    pub async fn delete(&self, path: &str) -> Reply {
        self.must(Method::DELETE, path, None).await
    }
}
