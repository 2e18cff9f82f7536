//! The process's own counters for `/metrics`: uploads started, done and
//! failed (by the kind of their error), request body bytes, status
//! requests, and a histogram of request durations by route. They are
//! updated in one place, [`crate::app::App::handle`], from the outcome it
//! produces, whatever the front end; [`crate::app::render`] writes them out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::app::{Outcome, Route};
use crate::model::error::ErrorKind;
use crate::pool::PoolGauges;

/// The routes durations are told apart by: a label each, fixed words.
pub const ROUTES: [&str; 7] = [
    "upload", "status", "clear", "metrics", "healthz", "tus", "other",
];

/// Upper bounds of the duration buckets, in seconds: status requests fall
/// in the first few, uploads of large files may take minutes.
pub const DURATION_BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
];

/// Where a route stands in [`ROUTES`].
fn route_index(route: Option<Route>) -> usize {
    match route {
        Some(Route::Upload) => 0,
        Some(Route::Status) => 1,
        Some(Route::Clear) => 2,
        Some(Route::Metrics) => 3,
        Some(Route::Healthz) => 4,
        Some(Route::Tus(_)) => 5,
        Some(Route::MethodNotAllowed(_) | Route::NotFound | Route::Preflight) | None => 6,
    }
}

/// The counters of one process.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    uploads_started: AtomicU64,
    uploads_done: AtomicU64,
    /// By kind, in the order of [`ErrorKind::ALL`].
    uploads_failed: [AtomicU64; ErrorKind::ALL.len()],
    received_bytes: AtomicU64,
    status_requests: AtomicU64,
    /// By route, in the order of [`ROUTES`]. A lock each, so that a scrape
    /// never sees a request counted in `_count` but not yet in its bucket.
    durations: [Mutex<Histogram>; ROUTES.len()],
}

/// A histogram as kept: the count of observations in each bucket alone
/// (made cumulative when read), their sum and their count.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; DURATION_BOUNDS.len()],
    sum: f64,
    count: u64,
}

impl Counters {
    /// An upload the core takes on has begun.
    pub(crate) fn upload_started(&self) {
        self.uploads_started.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request the core has answered, `took` after it began.
    /// `upload` says whether it was counted as an upload started, so that
    /// every upload started ends as done or failed exactly once.
    pub(crate) fn answered(&self, outcome: &Outcome, upload: bool, took: Duration) {
        if upload {
            match &outcome.answer {
                Ok(_) => self.uploads_done.fetch_add(1, Ordering::Relaxed),
                Err(e) => self.uploads_failed[kind_index(e.kind())].fetch_add(1, Ordering::Relaxed),
            };
        }
        if outcome.route == Some(Route::Status) {
            self.status_requests.fetch_add(1, Ordering::Relaxed);
        }
        self.received_bytes
            .fetch_add(outcome.received, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let mut histogram = self.durations[route_index(outcome.route)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = DURATION_BOUNDS.iter().position(|bound| seconds <= *bound) {
            histogram.buckets[n] += 1;
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// The counters as they stand, with the uploads in progress now.
    pub(crate) fn read(&self, uploads_in_progress: usize) -> ProcessMetrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProcessMetrics {
            uploads_started: load(&self.uploads_started),
            uploads_done: load(&self.uploads_done),
            uploads_failed: std::array::from_fn(|n| load(&self.uploads_failed[n])),
            received_bytes: load(&self.received_bytes),
            status_requests: load(&self.status_requests),
            uploads_in_progress: uploads_in_progress as u64,
            durations: std::array::from_fn(|n| {
                let h = self.durations[n]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let mut cumulative = h.buckets;
                for i in 1..cumulative.len() {
                    cumulative[i] += cumulative[i - 1];
                }
                Durations {
                    cumulative,
                    sum: h.sum,
                    count: h.count,
                }
            }),
        }
    }
}

fn kind_index(kind: ErrorKind) -> usize {
    // Every kind is in ALL (a unit test of the error module checks it).
    ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// One process's counters, read from its live ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessMetrics {
    /// Uploads the core took on.
    pub uploads_started: u64,
    /// Uploads stored.
    pub uploads_done: u64,
    /// Uploads that failed, by the kind of their error, in the order of
    /// [`ErrorKind::ALL`].
    pub uploads_failed: [u64; ErrorKind::ALL.len()],
    /// Request body bytes read, every route.
    pub received_bytes: u64,
    /// Status requests answered.
    pub status_requests: u64,
    /// Uploads holding a slot now.
    pub uploads_in_progress: u64,
    /// Request durations, by route in the order of [`ROUTES`].
    pub durations: [Durations; ROUTES.len()],
}

/// A duration histogram, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Durations {
    /// Requests that took at most each of [`DURATION_BOUNDS`].
    pub cumulative: [u64; DURATION_BOUNDS.len()],
    /// Seconds taken by all of them.
    pub sum: f64,
    /// How many there were (the `+Inf` bucket).
    pub count: u64,
}

/// What `/metrics` answers: this process's counters and the pool's gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// This process's counters.
    pub process: ProcessMetrics,
    /// The pool's totals, the same on every host sharing it.
    pub pool: PoolGauges,
}
