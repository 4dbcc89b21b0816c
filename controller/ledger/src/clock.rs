//! The time the controller and gateway believe it is. Production reads the system clock;
//! tests move time forward (period rollover, escalation delays) by writing an RFC 3339
//! timestamp into the file `--clock-file` names, which shifts the clock by the difference.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

/// A clock: the system's, optionally shifted by a test.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    file: Option<Arc<PathBuf>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { file: None }
    }

    /// A clock shifted to whatever time `file` holds when it holds one (testing only).
    pub fn from_file(file: PathBuf) -> Clock {
        Clock {
            file: Some(Arc::new(file)),
        }
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        let real = Timestamp::now();
        self.offset().map_or(real, |offset| real + offset)
    }

    fn offset(&self) -> Option<SignedDuration> {
        let text = std::fs::read_to_string(self.file.as_deref()?).ok()?;
        let mut parts = text.split_whitespace();
        let target: Timestamp = parts.next()?.parse().ok()?;
        // The file holds "<target> <written-at>": the clock reads `target` at `written-at`
        // and keeps running from there.
        let written: Timestamp = parts.next().and_then(|w| w.parse().ok())?;
        Some(target.duration_since(written))
    }
}

/// The same instant as a Kubernetes API timestamp (k8s-openapi uses its own jiff release).
pub fn k8s_timestamp(at: Timestamp) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_nanosecond(at.as_nanosecond())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// A Kubernetes API timestamp as ours.
pub fn from_k8s_timestamp(at: k8s_openapi::jiff::Timestamp) -> Timestamp {
    Timestamp::from_nanosecond(at.as_nanosecond()).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_file_shifts_time_and_keeps_it_running() {
        let dir = std::env::temp_dir().join(format!("aigov-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("clock");
        let now = Timestamp::now();
        std::fs::write(&file, format!("2030-01-01T00:00:00Z {now}")).unwrap();
        let shifted = Clock::from_file(file.clone()).now();
        let target: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(shifted >= target && shifted < target + SignedDuration::from_secs(60));
        std::fs::remove_file(&file).unwrap();
        assert!(Clock::from_file(file).now() < target);
    }
}
