//! Jobs: long operations run in the background; their progress events are kept in a
//! bounded per-job buffer and streamed as server-sent events with monotonic ids.
//!
//! The SSE stream of a job sends `event: progress` (a `ProgressEvent` as JSON) and, last,
//! `event: result` with the same JSON envelope `backupctl --json` prints. A client that
//! reconnects with `Last-Event-ID: N` gets every buffered event after `N`. The buffer
//! keeps the last [`EVENT_BUFFER`] events; the final `result` is always kept.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use backup_core::progress::{ProgressEvent, ProgressSink};
use futures::Stream;
use serde_json::{json, Value};
use tokio::sync::watch;

/// Events kept per job for `Last-Event-ID` resumption.
pub const EVENT_BUFFER: usize = 1024;

/// One buffered event.
#[derive(Debug, Clone)]
struct Buffered {
    id: u64,
    name: &'static str,
    data: String,
}

#[derive(Debug, Default)]
struct JobState {
    events: VecDeque<Buffered>,
    next_id: u64,
    result: Option<Value>,
}

/// One background operation.
#[derive(Debug)]
pub struct Job {
    /// Its id (a UUID).
    pub id: String,
    /// The backupctl command it corresponds to (`create`, `verify`, `restore`).
    pub command: &'static str,
    /// The workspace it works on (for the owner check).
    pub workspace: String,
    state: Mutex<JobState>,
    last_id: watch::Sender<u64>,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, name: &'static str, data: String) {
        let id = {
            let mut state = self.lock();
            state.next_id += 1;
            let id = state.next_id;
            if state.events.len() >= EVENT_BUFFER {
                state.events.pop_front();
            }
            state.events.push_back(Buffered { id, name, data });
            id
        };
        self.last_id.send_replace(id);
    }

    /// Ends the job with its result envelope, sent as the final `result` event.
    pub fn finish(&self, envelope: Value) {
        let data = envelope.to_string();
        self.lock().result = Some(envelope);
        self.push("result", data);
    }

    /// The result envelope, once finished.
    pub fn result(&self) -> Option<Value> {
        self.lock().result.clone()
    }

    /// `{"id", "command", "done", "result"}`.
    pub fn status(&self) -> Value {
        let result = self.result();
        json!({"id": self.id, "command": self.command, "done": result.is_some(), "result": result})
    }

    fn after(&self, cursor: u64) -> (Vec<Buffered>, bool) {
        let state = self.lock();
        let events = state
            .events
            .iter()
            .filter(|e| e.id > cursor)
            .cloned()
            .collect();
        (events, state.result.is_some())
    }

    /// The SSE response: buffered events after `last_event_id`, then live ones, until the
    /// `result` event; a comment heartbeat every `heartbeat` while nothing happens.
    pub fn sse(
        self: Arc<Self>,
        last_event_id: u64,
        heartbeat: Duration,
    ) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        let rx = self.last_id.subscribe();
        let stream = futures::stream::unfold(
            (self, rx, last_event_id, VecDeque::new(), false),
            |(job, mut rx, mut cursor, mut pending, mut ended)| async move {
                loop {
                    if let Some(e) = pending.pop_front() {
                        let e: Buffered = e;
                        cursor = e.id;
                        let event = Event::default()
                            .id(e.id.to_string())
                            .event(e.name)
                            .data(e.data);
                        return Some((Ok(event), (job, rx, cursor, pending, ended)));
                    }
                    if ended {
                        return None;
                    }
                    rx.borrow_and_update();
                    let (events, done) = job.after(cursor);
                    pending.extend(events);
                    if done {
                        ended = true;
                        continue;
                    }
                    if pending.is_empty() && rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        );
        Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
    }
}

/// Forwards progress events into the job's buffer.
#[derive(Debug)]
pub struct JobProgress(pub Arc<Job>);

impl ProgressSink for JobProgress {
    fn event(&self, event: &ProgressEvent) {
        if let Ok(data) = serde_json::to_string(event) {
            self.0.push("progress", data);
        }
    }
}

/// Every job of this process (kept until the process ends; an embedder would expire them).
#[derive(Debug, Clone, Default)]
pub struct Jobs(Arc<Mutex<HashMap<String, Arc<Job>>>>);

impl Jobs {
    /// Registers a new job.
    pub fn start(&self, command: &'static str, workspace: &str) -> Arc<Job> {
        let (last_id, _) = watch::channel(0);
        let job = Arc::new(Job {
            id: uuid::Uuid::new_v4().to_string(),
            command,
            workspace: workspace.to_string(),
            state: Mutex::new(JobState::default()),
            last_id,
        });
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job.id.clone(), Arc::clone(&job));
        job
    }

    /// The job `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }
}
