//! Leader election with a coordination.k8s.io Lease: one controller replica owns the ledger
//! and writes status; another takes over once the holder stops renewing for the lease's
//! duration.
//!
//! Leadership cannot split: the holder proves it leads only until the start of its last
//! successful renewal plus the renewal deadline (two thirds of the lease duration). Every
//! Lease call is bounded by that deadline, so a renewal that hangs (an API server that stopped
//! answering, a leader cut off from it) ends in time; past the deadline the ledger refuses
//! exchanges ([`crate::ledger_service::LedgerShared::leads`]) and [`Elector::hold`] returns.
//! A standby can take the Lease only once the lease duration has passed since the holder's
//! last renewal time, which is after the holder's deadline: at no instant do two replicas
//! grant. Each acquisition increments `leaseTransitions`, which the ledger hands to gateways
//! as the session's epoch, so a gateway ignores the answer of a leader older than one it has
//! already heard from.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

    /// How long after the start of a successful renewal this candidate may act as leader:
    /// well inside the lease duration, so it stops before anyone else can acquire the Lease.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Waits until this candidate holds the lease; returns the Lease's epoch (its
    /// transitions) and until when leadership is proven.
    pub async fn acquire(&self) -> (u64, Instant) {
        loop {
            let started = Instant::now();
            match self.bounded_try(started).await {
                Ok(Some(epoch)) => return (epoch, started + self.renew_deadline()),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "lease"),
            }
            tokio::time::sleep(self.duration / 5).await;
        }
    }

    /// Renews the lease every fifth of its duration, calling `renewed` with the new proof
    /// after each success. Past the proof's deadline the caller no longer acts as leader
    /// ([`crate::ledger_service::LedgerShared::leads`] turns false on its own), but renewals
    /// go on: one that succeeds proves the Lease stayed ours (a replace conflicts with anyone
    /// who took it), and leading resumes. Returns once another replica holds the Lease, or
    /// when no renewal has succeeded for three lease durations (the caller must stop leading).
    pub async fn hold(&self, mut proven_until: Instant, renewed: impl Fn(Instant)) {
        let mut last_success = Instant::now();
        loop {
            tokio::time::sleep(self.duration / 5).await;
            if self.released.load(Ordering::Acquire) {
                return;
            }
            let started = Instant::now();
            let limit = if started < proven_until {
                proven_until - started
            } else {
                self.renew_deadline()
            };
            match tokio::time::timeout(limit, self.try_acquire()).await {
                Ok(Ok(Some(_))) => {
                    proven_until = started + self.renew_deadline();
                    last_success = started;
                    renewed(proven_until);
                }
                Ok(Ok(None)) => return,
                Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal"),
                Err(_) => tracing::warn!("lease renewal timed out: not leading until one succeeds"),
            }
            if started.saturating_duration_since(last_success) > self.duration * 3 {
                tracing::warn!("no lease renewal for three lease durations: stop leading");
                return;
            }
        }
    }

    /// One try, bounded by the renewal deadline (a hung API server cannot hold it up).
    async fn bounded_try(&self, started: Instant) -> Result<Option<u64>> {
        let deadline = started + self.renew_deadline();
        tokio::time::timeout_at(deadline.into(), self.try_acquire())
            .await
            .unwrap_or_else(|_| Err(crate::error::Error::Timeout("Lease")))
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

    /// Takes or renews the Lease; its epoch (transitions) when this candidate holds it.
    async fn try_acquire(&self) -> Result<Option<u64>> {
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
                Ok(_) => Ok(Some(0)),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
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
            return Ok(None);
        }
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(k8s_timestamp(now)));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(MicroTime(k8s_timestamp(now)));
        spec.lease_duration_seconds = Some(seconds);
        let epoch = u64::try_from(spec.lease_transitions.unwrap_or(0)).unwrap_or(0);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Some(epoch)),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
