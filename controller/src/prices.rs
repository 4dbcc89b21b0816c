//! The price book in force: the catalog plus every AIModelPrice, kept current by a watch.
//! The controller prices settled usage with it; the gateway prices reservations with it.

use std::sync::{Arc, RwLock};

use aigov_api::AIModelPrice;
use aigov_api::pricing::{PriceBook, PriceOverride};
use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
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

    /// Watches AIModelPrice objects and keeps the book current; calls `changed` with the
    /// names of the prices that appeared or changed after the initial list.
    pub async fn watch(self, client: Client, changed: impl Fn(&AIModelPrice) + Send + 'static) {
        let api: Api<AIModelPrice> = Api::all(client);
        let mut known: std::collections::BTreeMap<String, AIModelPrice> = Default::default();
        let mut initial: Option<std::collections::BTreeMap<String, AIModelPrice>> = None;
        let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Init) => initial = Some(Default::default()),
                Ok(Event::InitApply(p)) => {
                    if let Some(init) = initial.as_mut() {
                        init.insert(p.name_any(), p);
                    }
                }
                Ok(Event::InitDone) => {
                    known = initial.take().unwrap_or_default();
                    self.rebuild(&known);
                }
                Ok(Event::Apply(p)) => {
                    changed(&p);
                    known.insert(p.name_any(), p);
                    self.rebuild(&known);
                }
                Ok(Event::Delete(p)) => {
                    known.remove(&p.name_any());
                    self.rebuild(&known);
                }
                Err(e) => tracing::warn!(error = %e, "AIModelPrice watch"),
            }
        }
    }

    fn rebuild(&self, prices: &std::collections::BTreeMap<String, AIModelPrice>) {
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
