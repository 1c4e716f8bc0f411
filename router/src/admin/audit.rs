//! The audit list: every action that changes the cluster through this
//! router (operations started from the dashboard, kicks, room deletions),
//! who asked, what, and how it ended; kept in memory (the last [`KEEP`])
//! for `GET /admin/audit` and logged as it happens. Who is the label of the
//! credential: `admin` (the admin token), `api-key-N` (the Nth `--api-key`),
//! `anonymous` (none is configured), or the refused kind.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use service::auth::{bearer, secret_eq};

use crate::admin::events::unix_ms;
use crate::app::App;

/// Entries kept.
const KEEP: usize = 200;

/// One action.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    /// Unix time in milliseconds.
    at: u64,
    /// The credential's label.
    who: String,
    /// What was asked, e.g. `kick lobby/m3` or `drain i3`.
    action: String,
    /// How it ended, e.g. `204`, `done: moved 42`, `refused: 403`.
    result: String,
}

/// The bounded list. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Audit {
    inner: Arc<Mutex<VecDeque<Entry>>>,
}

impl Audit {
    /// Records an action and logs it.
    pub(crate) fn record(&self, who: &str, action: &str, result: &str) {
        tracing::info!(who, action, result, "audit");
        let mut list = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() == KEEP {
            list.pop_front();
        }
        list.push_back(Entry {
            at: unix_ms(),
            who: who.to_owned(),
            action: action.to_owned(),
            result: result.to_owned(),
        });
    }

    fn newest_first(&self) -> Vec<Entry> {
        let list = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().rev().cloned().collect()
    }
}

/// The label of the request's credential.
pub(crate) fn who(app: &App, headers: &HeaderMap) -> String {
    let config = app.config();
    let given = bearer(headers);
    if config.admin_token.is_none() && config.api_keys.is_empty() {
        return "anonymous".into();
    }
    let Some(given) = given else {
        return "no credential".into();
    };
    if config
        .admin_token
        .as_ref()
        .is_some_and(|t| secret_eq(given, t.expose()))
    {
        return "admin".into();
    }
    match config
        .api_keys
        .iter()
        .position(|k| secret_eq(given, k.expose()))
    {
        Some(i) => format!("api-key-{}", i + 1),
        None => "wrong credential".into(),
    }
}

/// `GET /admin/audit` answer.
#[derive(Debug, Serialize)]
pub(crate) struct AuditPage {
    entries: Vec<Entry>,
}

/// `GET /admin/audit`: the newest first.
pub(crate) async fn list(State(app): State<App>) -> Json<AuditPage> {
    Json(AuditPage {
        entries: app.admin().audit.newest_first(),
    })
}

/// Layer around the room API: records kicks and room deletions (who
/// asked, what, the answer's status, refusals included); other requests
/// pass unrecorded.
pub(crate) async fn audited(
    State(app): State<App>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let kick = match (matched.as_ref().map(MatchedPath::as_str), req.method()) {
        (Some("/rooms/{room}/members/{member}"), &Method::DELETE) => true,
        (Some("/rooms/{room}"), &Method::DELETE) => false,
        _ => return next.run(req).await,
    };
    let target = req.uri().path().trim_start_matches("/rooms/");
    let action = if kick {
        format!("kick {}", target.replacen("/members/", "/", 1))
    } else {
        format!("delete room {target}")
    };
    let who = who(&app, req.headers());
    let resp = next.run(req).await;
    let status = resp.status();
    let result = if status.is_success() {
        status.as_u16().to_string()
    } else {
        format!("refused: {}", status.as_u16())
    };
    app.admin().audit.record(&who, &action, &result);
    resp
}
