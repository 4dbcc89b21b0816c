//! Leader election with a coordination.k8s.io Lease: one controller replica owns the ledger
//! and writes status; another takes over once the holder stops renewing for the lease's
//! duration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use aigov_ledger::clock::k8s_timestamp;

use crate::error::Result;

/// One candidate for the lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// Set by [`Elector::release`]: renewals stop, so the released lease is not taken back.
    released: AtomicBool,
}

impl Elector {
    /// A candidate `identity` for lease `namespace/name`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            released: AtomicBool::new(false),
        }
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "lease"),
            }
            tokio::time::sleep(self.duration / 5).await;
        }
    }

    /// Renews the lease until renewal fails for longer than its duration; then returns
    /// (the caller must stop leading).
    pub async fn hold(&self) {
        let mut last_renewed = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 5).await;
            if self.released.load(Ordering::Acquire) {
                return;
            }
            match self.try_acquire().await {
                Ok(true) => last_renewed = std::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "lease renewal");
                    if last_renewed.elapsed() > self.duration * 2 / 3 {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the lease up (a graceful stop): renewals stop, and if this candidate holds the
    /// lease its holder is cleared, so a standby acquires it on its next try instead of
    /// waiting out the lease duration. The caller must already have stopped acting as leader.
    pub async fn release(&self) -> Result<()> {
        self.released.store(true, Ordering::Release);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            // 409: someone changed it since we read it, so it is no longer simply ours.
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn try_acquire(&self) -> Result<bool> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(k8s_timestamp(now))),
                    renew_time: Some(MicroTime(k8s_timestamp(now))),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(seconds));
            t.0.as_second() + held_for < now.as_second()
        }) || spec.holder_identity.as_deref().is_none_or(str::is_empty);
        if !ours && !expired {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(k8s_timestamp(now)));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(MicroTime(k8s_timestamp(now)));
        spec.lease_duration_seconds = Some(seconds);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
