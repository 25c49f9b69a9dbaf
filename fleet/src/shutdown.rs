//! The stop request both an engine and the launcher obey: SIGINT (Ctrl-C)
//! or SIGTERM (what the launcher, Docker and Kubernetes send). It lives
//! apart from the engines so the launcher can wait for it without
//! depending on their servers.

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    tracing::info!("shutting down");
}
