//! `GET /events`: what happened to networks (create, connect, disconnect,
//! destroy) and sandboxes (create, destroy, under cnm's own type
//! `sandbox`), streamed as dockerd streams its events — one JSON object per
//! line, `since` replaying the last events kept, `until` ending the stream,
//! `filters` as dockerd's (`type`, `event`, `network`, `container`,
//! `scope`, `label`).

use super::ApiState;
use super::extract::QueryMap;
use super::filters::{Filters, parse_until};
use crate::errors::{ApiError, ApiResult};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// How many past events `since` can replay (dockerd keeps 256).
const KEPT: usize = 256;

/// The filters `GET /events` takes: dockerd's keys. Those naming objects
/// cnmd has no events of (images, volumes, services, …) match nothing.
const EVENT_FILTERS: &[&str] = &[
    "type",
    "event",
    "network",
    "container",
    "scope",
    "label",
    "image",
    "volume",
    "service",
    "node",
    "secret",
    "config",
    "plugin",
    "daemon",
];

/// One event, in dockerd's shape.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `network`, or `sandbox` (cnm's own).
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// `create`, `connect`, `disconnect`, `destroy`.
    #[serde(rename = "Action")]
    pub action: &'static str,
    /// What it happened to.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    pub scope: &'static str,
    /// Seconds since the epoch.
    pub time: u64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: u128,
}

/// The object of an event: its id and attributes (`name`, `type`, `container`).
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    /// The network's or sandbox's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its name, driver, and the sandbox a connect concerns.
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The events of this daemon: the last [`KEPT`], and every listener.
pub struct Events {
    live: broadcast::Sender<Arc<Event>>,
    kept: Mutex<VecDeque<Arc<Event>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events { live: broadcast::channel(1024).0, kept: Mutex::new(VecDeque::with_capacity(KEPT)) }
    }
}

impl Events {
    /// Records and sends one event.
    pub fn publish(&self, kind: &'static str, action: &'static str, id: &str, attributes: &[(&str, &str)]) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let ev = Arc::new(Event {
            kind,
            action,
            actor: Actor {
                id: id.to_string(),
                attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            },
            scope: "local",
            time: now.as_secs(),
            time_nano: now.as_nanos(),
        });
        {
            let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back(ev.clone());
        }
        // No listener is fine.
        let _ = self.live.send(ev);
    }

    /// A network event: `name` and `type` (the driver), and the sandbox for a connect or disconnect.
    pub fn network(&self, action: &'static str, net: &cnm::Network, sandbox: Option<&str>) {
        let mut attrs = vec![("name", net.name()), ("type", net.driver_name())];
        if let Some(sb) = sandbox {
            attrs.push(("container", sb));
        }
        self.publish("network", action, net.id(), &attrs);
    }

    /// A sandbox event (cnm's own type).
    pub fn sandbox(&self, action: &'static str, sb: &cnm::Sandbox) {
        self.publish("sandbox", action, sb.id(), &[("name", sb.container_id())]);
    }
}

/// Whether `ev` passes `f`, as dockerd filters its events.
fn matches(f: &Filters, ev: &Event) -> bool {
    let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str).unwrap_or_default();
    // dockerd's fuzzy match: the whole value, or a prefix of it (a short id).
    let fuzzy = |source: &str, v: &str| !source.is_empty() && source.starts_with(v);
    let actor = |v: &str| fuzzy(&ev.actor.id, v) || fuzzy(attr("name"), v);
    let network = |v: &str| ev.kind == "network" && actor(v);
    let container = |v: &str| match ev.kind {
        "sandbox" => actor(v),
        _ => fuzzy(attr("container"), v),
    };
    let nothing_of_ours = ["image", "volume", "service", "node", "secret", "config", "plugin", "daemon"];
    f.any("type", |v| v == ev.kind)
        && f.any("event", |v| v == ev.action)
        && f.any("network", network)
        && f.any("container", container)
        && f.any("scope", |v| v == ev.scope)
        && f.labels("label", &ev.actor.attributes)
        && nothing_of_ours.iter().all(|k| f.values(k).is_empty())
}

/// `GET /events?since=&until=&filters=`.
pub async fn events(State(st): State<ApiState>, q: QueryMap) -> ApiResult<Response> {
    let f = Filters::parse(q.0.get("filters").map(String::as_str), EVENT_FILTERS)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let at = |key: &str| -> Result<Option<u64>, ApiError> {
        let Some(value) = q.0.get(key).filter(|v| !v.is_empty()) else { return Ok(None) };
        parse_until(value, now.as_secs()).map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid {key} {value:?}: expected a Unix timestamp, an RFC 3339 time or a duration such as 24h"
            ))
        })
    };
    let (since, until) = (at("since")?, at("until")?);
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(ApiError::bad_request(format!("since ({s}) is after until ({u})")));
    }
    // Listening before the replay is read: nothing falls between the two.
    let live = st.events.live.subscribe();
    // As dockerd's: `since` or `until` replays what is kept between them.
    let backlog: VecDeque<Arc<Event>> = if since.is_some() || until.is_some() {
        let kept = st.events.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = since.unwrap_or(0);
        kept.iter().filter(|e| e.time >= s && until.is_none_or(|u| e.time <= u)).cloned().collect()
    } else {
        VecDeque::new()
    };
    let last_seen = backlog.back().map(|e| e.time_nano);
    // `until` in seconds: the stream ends once that second is over.
    let end = until.map(|u| {
        let left = Duration::from_secs(u + 1).saturating_sub(now);
        tokio::time::Instant::now() + left
    });
    let state = Stream { f, backlog, live, end, since, until, last_seen };
    let body = Body::from_stream(futures::stream::unfold(state, next_line));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// What the stream of one request still has to send.
struct Stream {
    f: Filters,
    backlog: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
    end: Option<tokio::time::Instant>,
    /// A `since` in the future holds back what happens before it.
    since: Option<u64>,
    until: Option<u64>,
    /// The last replayed event's time: live events up to it were replayed.
    last_seen: Option<u128>,
}

/// The next line of the stream, or its end.
async fn next_line(mut s: Stream) -> Option<(Result<Bytes, std::io::Error>, Stream)> {
    loop {
        let ev = match s.backlog.pop_front() {
            Some(ev) => ev,
            None => {
                let received = match s.end {
                    Some(end) => match tokio::time::timeout_at(end, s.live.recv()).await {
                        Ok(r) => r,
                        Err(_) => return None,
                    },
                    None => s.live.recv().await,
                };
                match received {
                    Ok(ev) if s.last_seen.is_some_and(|t| ev.time_nano <= t) => continue,
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "an events listener fell behind");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        if s.until.is_some_and(|u| ev.time > u) {
            return None;
        }
        if s.since.is_some_and(|t| ev.time < t) || !matches(&s.f, &ev) {
            continue;
        }
        let mut line = serde_json::to_vec(&*ev).unwrap_or_default();
        line.push(b'\n');
        return Some((Ok(Bytes::from(line)), s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &'static str, action: &'static str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            kind,
            action,
            actor: Actor {
                id: id.into(),
                attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            },
            scope: "local",
            time: 1,
            time_nano: 1,
        }
    }

    /// A `since` in the future: what happens before it is not sent, what
    /// happens after it is; the stream ends after `until`.
    #[tokio::test]
    async fn a_future_since_holds_back_earlier_events() {
        let events = Events::default();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let (since, until) = (now + 1, now + 1);
        let left = Duration::from_secs(until + 1).saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
        let stream = Stream {
            f: Filters::default(),
            backlog: VecDeque::new(),
            live: events.live.subscribe(),
            end: Some(tokio::time::Instant::now() + left),
            since: Some(since),
            until: Some(until),
            last_seen: None,
        };
        events.publish("network", "create", "early", &[]);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut s = stream;
            while let Some((line, rest)) = next_line(s).await {
                got.push(String::from_utf8(line.unwrap().to_vec()).unwrap());
                s = rest;
            }
            got
        });
        // Into the second `since` names.
        let wait = Duration::from_secs(since).saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
        events.publish("network", "create", "late", &[]);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains(r#""ID":"late""#), "{got:?}");
    }

    #[test]
    fn filters_match_as_dockerd() {
        let connect = ev("network", "connect", "n1id", &[("name", "n1"), ("type", "bridge"), ("container", "sb1")]);
        let created = ev("sandbox", "create", "sb1", &[("name", "web")]);
        let f = |s: &str| Filters::parse(Some(s), EVENT_FILTERS).unwrap();
        assert!(matches(&f(r#"{"type":["network"]}"#), &connect));
        assert!(!matches(&f(r#"{"type":["network"]}"#), &created));
        assert!(matches(&f(r#"{"network":["n1"],"event":["connect","disconnect"]}"#), &connect));
        assert!(matches(&f(r#"{"network":["n1id"]}"#), &connect));
        assert!(!matches(&f(r#"{"network":["n2"]}"#), &connect));
        // A prefix (a short id) matches, as dockerd's fuzzy match; not a part inside.
        assert!(matches(&f(r#"{"network":["n1i"]}"#), &connect));
        assert!(!matches(&f(r#"{"network":["1id"]}"#), &connect));
        assert!(matches(&f(r#"{"container":["sb"]}"#), &connect));
        assert!(matches(&f(r#"{"container":["sb1"]}"#), &connect));
        assert!(matches(&f(r#"{"container":["web"]}"#), &created));
        assert!(!matches(&f(r#"{"image":["busybox"]}"#), &connect));
        assert!(matches(&f(r#"{"label":["type=bridge"]}"#), &connect));
        assert!(Filters::parse(Some(r#"{"colour":["red"]}"#), EVENT_FILTERS).is_err());
    }
}
