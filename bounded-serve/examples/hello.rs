//! A hello-world server on one thread behind [`bounded_serve::serve`], for
//! measuring what the accept loop costs per request
//! (`wrk -t1 -c8 http://127.0.0.1:PORT/` and the process's CPU time).
//!
//! `cargo run --release -p bounded-serve --example hello -- 18090`

use std::convert::Infallible;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18090);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let hello = || {
            hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(String::from("hello")))
            })
        };
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        bounded_serve::serve(listener, hello, bounded_serve::Limits::default(), stop).await;
        Ok(())
    })
}
