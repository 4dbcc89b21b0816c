//! The price book in force: the catalog plus every AIModelPrice, kept current by a watch.
//! The controller prices settled usage with it; the gateway prices reservations with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use aigov_api::AIModelPrice;
use aigov_api::pricing::{PriceBook, PriceOverride};
use kube::{Api, Client, ResourceExt};

/// A shared, swappable price book.
#[derive(Clone, Debug, Default)]
pub struct Prices {
    book: Arc<RwLock<Arc<PriceBook>>>,
}

impl Prices {
    /// The book in force now (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<PriceBook> {
        self.book.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the overrides.
    pub fn set_overrides(&self, overrides: Vec<PriceOverride>) {
        let book = PriceBook::default().with_overrides(overrides);
        *self.book.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(book);
    }

    /// Watches AIModelPrice objects and keeps the book current; calls `changed` with each
    /// price that appears or changes after the initial list.
    pub async fn watch(self, client: Client, changed: impl Fn(&AIModelPrice) + Send + 'static) {
        let known: Arc<Mutex<BTreeMap<String, AIModelPrice>>> = Arc::default();
        let (apply, delete, reset) = (
            (self.clone(), known.clone()),
            (self.clone(), known.clone()),
            (self, known),
        );
        crate::watch::follow::<AIModelPrice>(
            Api::all(client),
            move |p| {
                changed(p);
                let mut known = lock(&apply.1);
                known.insert(p.name_any(), p.clone());
                apply.0.rebuild(&known);
            },
            move |p| {
                let mut known = lock(&delete.1);
                known.remove(&p.name_any());
                delete.0.rebuild(&known);
            },
            move |all| {
                let mut known = lock(&reset.1);
                *known = all.iter().map(|p| (p.name_any(), p.clone())).collect();
                reset.0.rebuild(&known);
            },
        )
        .await;
    }

    fn rebuild(&self, prices: &BTreeMap<String, AIModelPrice>) {
        let overrides = prices
            .values()
            .filter_map(|p| match p.to_override() {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(price = p.name_any(), error = %e, "AIModelPrice ignored");
                    None
                }
            })
            .collect();
        self.set_overrides(overrides);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
