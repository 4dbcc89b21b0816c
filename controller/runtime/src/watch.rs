//! Following a Kubernetes watch object by object, for caches that keep only what they need
//! (compiled budgets, pods by IP, the price book) rather than the objects themselves.

use futures::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

/// Follows a watch: `apply` and `delete` per object as they change, `reset` with the full
/// list after each (re)list. Only the changed object is touched, so a status write on one of
/// 10,000 budgets costs one comparison. Lists come from the API server's cache.
pub async fn follow<K>(api: Api<K>, apply: impl Fn(&K), delete: impl Fn(&K), reset: impl Fn(&[K]))
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let mut initial: Option<Vec<K>> = None;
    let config = watcher::Config::default().any_semantic();
    // default_backoff: an error (RBAC, an API server restart) is retried after an exponential
    // pause instead of at once, so a watch that cannot succeed does not spin a core.
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => initial = Some(Vec::new()),
            Ok(Event::InitApply(o)) => {
                if let Some(init) = initial.as_mut() {
                    init.push(o);
                }
            }
            Ok(Event::InitDone) => reset(&initial.take().unwrap_or_default()),
            Ok(Event::Apply(o)) => apply(&o),
            Ok(Event::Delete(o)) => delete(&o),
            Err(e) => tracing::warn!(error = %e, "watch"),
        }
    }
}
