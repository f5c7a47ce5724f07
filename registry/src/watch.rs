//! A change counter that follows an etcd prefix: every put or delete under
//! the prefix moves it, and so does every (re)start of the watch, since
//! anything may have changed while no watch was up. Readers re-list what
//! they cache when it moves.

use std::time::Duration;

use etcd_client::{Client, WatchOptions};
use tokio::sync::watch;

/// How long a failed watch waits before it is started again.
const RESTART_AFTER: Duration = Duration::from_millis(250);

/// Watches every key under each of `prefixes` until `sender` has no
/// receiver left, moving the counter on each change; `what` names the
/// watched records in warnings.
pub fn watch_prefixes(client: Client, prefixes: Vec<String>, sender: watch::Sender<u64>, what: &'static str) {
    for prefix in prefixes {
        tokio::spawn(follow(client.clone(), prefix, sender.clone(), what));
    }
}

async fn follow(mut client: Client, prefix: String, sender: watch::Sender<u64>, what: &'static str) {
    loop {
        match client.watch(prefix.clone(), Some(WatchOptions::new().with_prefix())).await {
            Ok(mut stream) => {
                sender.send_modify(|n| *n += 1);
                loop {
                    match stream.message().await {
                        Ok(Some(response)) if !response.events().is_empty() => sender.send_modify(|n| *n += 1),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(error) => {
                            tracing::warn!(%error, "the etcd watch on {what} failed; restarting it");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not watch {what} in etcd; retrying"),
        }
        if sender.is_closed() {
            return;
        }
        tokio::time::sleep(RESTART_AFTER).await;
    }
}
