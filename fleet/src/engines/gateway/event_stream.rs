//! The payment-event stream (`GET /payments/stream`): every settlement event
//! to every watcher over a WebSocket, with deadlines so that a watcher which
//! stops reading, or vanishes without closing, gives its slot back.
//!
//! An upgraded connection has left the accept loop and its deadlines, so the
//! stream keeps its own:
//! - a message the watcher does not take within the send deadline ends the
//!   stream (a client that never reads would otherwise hold the gateway's
//!   send, and the slot, for good);
//! - the gateway pings every ping interval, and a watcher from which nothing
//!   was heard for the idle deadline is closed (a peer that vanished without
//!   a FIN is otherwise never noticed while no event is sent). A pong, any
//!   frame, or a send that had to wait for the watcher to make room counts
//!   as heard: a watcher reading slowly through a full buffer meets its
//!   pings late, but it is reading;
//! - a watcher sends nothing but control frames, so its messages are capped
//!   at [`MAX_INCOMING_MESSAGE`]: a hostile one cannot make the gateway
//!   buffer tungstenite's default 64 MiB per stream.
//!
//! A watcher that falls more than the broadcast channel's capacity behind
//! misses the events it fell behind on and keeps the stream.

use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use futures_util::SinkExt as _;
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

/// The largest message the gateway reads from a watcher. Control frames
/// (ping, pong, close) carry at most 125 bytes.
pub(crate) const MAX_INCOMING_MESSAGE: usize = 4 * 1024;

/// The stream's deadlines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    /// How long one message may wait for the watcher to take it.
    pub send_timeout: Duration,
    /// How often the gateway pings a watcher.
    pub ping_interval: Duration,
    /// How long a watcher may stay silent (no pong, no frame) before it is
    /// closed. Checked at each ping, so met within one ping interval.
    pub idle_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            send_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The watcher closed it, or its connection ended.
    ClientClosed,
    /// The watcher sent something the gateway does not accept (a message
    /// over [`MAX_INCOMING_MESSAGE`], a protocol violation).
    ClientError,
    /// A message waited longer than the send deadline.
    SendTimedOut,
    /// Writing to the connection failed.
    SendFailed,
    /// Nothing was heard from the watcher for the idle deadline.
    Idle,
    /// The gateway's event source ended.
    SourceEnded,
}

impl StreamEnd {
    /// The reason as it appears in logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::ClientError => "client_error",
            Self::SendTimedOut => "send_timed_out",
            Self::SendFailed => "send_failed",
            Self::Idle => "idle",
            Self::SourceEnded => "source_ended",
        }
    }
}

/// Applies the stream's bounds on what a watcher may send to the upgrade.
/// The read buffer is sized for control frames, not tungstenite's 128 KiB
/// (32 MiB over 256 streams).
pub(crate) fn configure(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_INCOMING_MESSAGE)
        .max_frame_size(MAX_INCOMING_MESSAGE)
        .read_buffer_size(2 * MAX_INCOMING_MESSAGE)
}

/// Sends every event from `events` to the watcher on `socket` until the
/// watcher leaves, breaks a deadline, or the events end.
pub(crate) async fn watch(
    mut socket: WebSocket,
    mut events: broadcast::Receiver<String>,
    limits: StreamLimits,
) -> StreamEnd {
    let mut pings =
        tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        let outgoing = tokio::select! {
            event = events.recv() => match event {
                Ok(json) => Message::Text(json.into()),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    close(&mut socket, close_code::AWAY, "the gateway is stopping", limits).await;
                    return StreamEnd::SourceEnded;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) => {
                    // Sends tungstenite's queued reply, completing the
                    // close handshake (without it the watcher sees 1006).
                    let _ = tokio::time::timeout(limits.send_timeout, socket.flush()).await;
                    return StreamEnd::ClientClosed;
                }
                None => return StreamEnd::ClientClosed,
                Some(Err(e)) => return read_error(e),
                Some(Ok(_)) => {
                    last_heard = Instant::now();
                    continue;
                }
            },
            _ = pings.tick() => {
                if last_heard.elapsed() >= limits.idle_timeout {
                    close(&mut socket, close_code::POLICY, "no pong within the idle deadline", limits).await;
                    return StreamEnd::Idle;
                }
                Message::Ping(Default::default())
            }
        };
        let send = socket.send(outgoing);
        tokio::pin!(send);
        let sent = match futures_util::poll!(&mut send) {
            Poll::Ready(sent) => sent,
            // The watcher's buffers were full: the send completing later
            // means the watcher read, which counts as hearing from it.
            Poll::Pending => match tokio::time::timeout(limits.send_timeout, send).await {
                Ok(sent) => {
                    last_heard = Instant::now();
                    sent
                }
                Err(_) => return StreamEnd::SendTimedOut,
            },
        };
        if sent.is_err() {
            return StreamEnd::SendFailed;
        }
    }
}

/// A read error: the watcher's connection ending without a close frame is
/// a close; anything else (a message over the cap, a protocol violation)
/// is the watcher's error.
fn read_error(e: axum::Error) -> StreamEnd {
    use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
    match e.into_inner().downcast::<Error>().map(|e| *e) {
        Ok(
            Error::ConnectionClosed
            | Error::AlreadyClosed
            | Error::Io(_)
            | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
        ) => StreamEnd::ClientClosed,
        _ => StreamEnd::ClientError,
    }
}

/// Says why the gateway closes a stream, if the watcher takes it in time.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str, limits: StreamLimits) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(limits.send_timeout, socket.send(frame)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::State;
    use axum::response::Response;
    use axum::routing::get;
    use futures_util::{SinkExt, StreamExt};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::mpsc;

    /// A server with one stream route whose ends are reported on a channel.
    struct Server {
        port: u16,
        events: broadcast::Sender<String>,
        ends: mpsc::UnboundedReceiver<StreamEnd>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    #[derive(Clone)]
    struct Shared {
        events: broadcast::Sender<String>,
        ends: mpsc::UnboundedSender<StreamEnd>,
        limits: StreamLimits,
    }

    async fn route(State(s): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
        configure(upgrade).on_upgrade(move |socket| async move {
            let end = watch(socket, s.events.subscribe(), s.limits).await;
            let _ = s.ends.send(end);
        })
    }

    async fn server(limits: StreamLimits) -> Server {
        let (events, _) = broadcast::channel(1024);
        let (ends_tx, ends) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events: events.clone(),
            ends: ends_tx,
            limits,
        });
        let app = Router::new().route("/s", get(route)).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            port,
            events,
            ends,
            task,
        }
    }

    /// Upgrades a raw connection and returns it after the 101's head: the
    /// caller decides whether it ever reads or answers a ping.
    async fn raw_watcher(port: u16) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(
            b"GET /s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        s
    }

    /// A WebSocket client that answers pings as it reads.
    async fn ws_client(port: u16) -> tokio_tungstenite::WebSocketStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let url = format!("ws://127.0.0.1:{port}/s");
        tokio_tungstenite::client_async(url, tcp).await.unwrap().0
    }

    /// The next stream end, or a failure naming what did not happen.
    async fn next_end(server: &mut Server, within: Duration, what: &str) -> StreamEnd {
        tokio::time::timeout(within, server.ends.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: the stream did not end within {within:?}"))
            .unwrap()
    }

    /// Reads server frames (unmasked, so the header is 2, 4 or 10 bytes)
    /// until the connection ends; returns their opcodes.
    async fn opcodes_until_eof(s: &mut TcpStream) -> Vec<u8> {
        let mut opcodes = Vec::new();
        let mut header = [0u8; 2];
        while s.read_exact(&mut header).await.is_ok() {
            let len = match header[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    s.read_exact(&mut l).await.unwrap();
                    u64::from(u16::from_be_bytes(l))
                }
                127 => {
                    let mut l = [0u8; 8];
                    s.read_exact(&mut l).await.unwrap();
                    u64::from_be_bytes(l)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).unwrap()];
            if s.read_exact(&mut payload).await.is_err() {
                break;
            }
            opcodes.push(header[0] & 0x0f);
        }
        opcodes
    }

    #[tokio::test]
    async fn a_watcher_that_stops_reading_is_dropped_at_the_send_deadline() {
        let limits = StreamLimits {
            send_timeout: Duration::from_millis(300),
            ping_interval: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
        };
        let mut server = server(limits).await;
        let _never_reads = raw_watcher(server.port).await;
        // Events until the socket buffers on both sides are full and a send
        // waits: 64 KiB each, at most 1 GiB in all.
        let event = "x".repeat(64 * 1024);
        let events = server.events.clone();
        let pump = tokio::spawn(async move {
            for _ in 0..16_384 {
                // No receiver yet is an error too: keep sending.
                let _ = events.send(event.clone());
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        });
        let end = next_end(
            &mut server,
            Duration::from_secs(30),
            "a watcher that never reads",
        )
        .await;
        pump.abort();
        assert_eq!(end, StreamEnd::SendTimedOut);
    }

    #[tokio::test]
    async fn a_watcher_that_never_answers_pings_is_closed_when_idle() {
        let limits = StreamLimits {
            send_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1500),
        };
        let mut server = server(limits).await;
        // Reads everything, answers nothing: a raw socket sends no pongs.
        let mut silent = raw_watcher(server.port).await;
        let reader = tokio::spawn(async move { opcodes_until_eof(&mut silent).await });
        let end = next_end(
            &mut server,
            Duration::from_secs(10),
            "a watcher that never pongs",
        )
        .await;
        assert_eq!(end, StreamEnd::Idle);
        let opcodes = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the idle connection was not closed")
            .unwrap();
        // Pings (0x9) first, each unanswered, then a close frame (0x8).
        assert!(opcodes.len() >= 3, "{opcodes:?}");
        assert!(
            opcodes[..opcodes.len() - 1].iter().all(|&o| o == 0x9),
            "{opcodes:?}"
        );
        assert_eq!(opcodes.last(), Some(&0x8), "{opcodes:?}");
    }

    #[tokio::test]
    async fn a_watcher_that_answers_pings_keeps_its_stream() {
        let limits = StreamLimits {
            send_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1500),
        };
        let mut server = server(limits).await;
        let mut client = ws_client(server.port).await;
        // Three idle deadlines with no event: only the pongs, which the
        // client sends as it reads, keep the stream open.
        let until = Instant::now() + Duration::from_millis(4500);
        let mut pings = 0;
        while let Ok(Some(frame)) = tokio::time::timeout_at(until, client.next()).await {
            if frame.unwrap().is_ping() {
                pings += 1;
            }
        }
        assert!(pings >= 5, "only {pings} pings in 4.5 s");
        assert!(
            server.ends.try_recv().is_err(),
            "the stream ended while answered"
        );
        server.events.send("settled".into()).unwrap();
        let event = loop {
            let frame = client.next().await.unwrap().unwrap();
            if frame.is_text() {
                break frame;
            }
        };
        assert_eq!(event.into_text().unwrap().as_str(), "settled");
        client.close(None).await.unwrap();
        let end = next_end(&mut server, Duration::from_secs(10), "a closed watcher").await;
        assert_eq!(end, StreamEnd::ClientClosed);
        // The gateway completed the close handshake: its reply arrives,
        // after any ping already on its way.
        let reply = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match client.next().await {
                    Some(Ok(m)) if m.is_ping() => continue,
                    other => return other,
                }
            }
        })
        .await;
        assert!(
            matches!(reply, Ok(Some(Ok(ref m))) if m.is_close()),
            "{reply:?}"
        );
    }

    #[tokio::test]
    async fn a_watcher_that_sends_a_large_message_loses_its_stream() {
        let mut server = server(StreamLimits::default()).await;
        let mut client = ws_client(server.port).await;
        // One byte over the cap, in one frame.
        let big = "x".repeat(MAX_INCOMING_MESSAGE + 1);
        let _ = client
            .send(tokio_tungstenite::tungstenite::Message::text(big))
            .await;
        let end = next_end(&mut server, Duration::from_secs(10), "an oversized message").await;
        assert_eq!(end, StreamEnd::ClientError);
    }

    #[tokio::test]
    async fn a_message_at_the_cap_is_read() {
        let mut server = server(StreamLimits::default()).await;
        let mut client = ws_client(server.port).await;
        let at_cap = "x".repeat(MAX_INCOMING_MESSAGE);
        client
            .send(tokio_tungstenite::tungstenite::Message::text(at_cap))
            .await
            .unwrap();
        // The gateway reads frames in order: had it refused the message, the
        // stream would end with that error, not with this close.
        client.close(None).await.unwrap();
        let end = next_end(&mut server, Duration::from_secs(10), "a closed watcher").await;
        assert_eq!(end, StreamEnd::ClientClosed);
    }

    #[tokio::test]
    async fn a_message_over_the_cap_in_small_fragments_loses_its_stream() {
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        let mut server = server(StreamLimits::default()).await;
        let mut client = ws_client(server.port).await;
        // Three frames, each under the cap, of one message over it.
        let part = axum::body::Bytes::from(vec![b'x'; MAX_INCOMING_MESSAGE / 2]);
        for (opcode, last) in [
            (OpCode::Data(Data::Text), false),
            (OpCode::Data(Data::Continue), false),
            (OpCode::Data(Data::Continue), true),
        ] {
            let frame = Frame::message(part.clone(), opcode, last);
            let sent = client
                .send(tokio_tungstenite::tungstenite::Message::Frame(frame))
                .await;
            if sent.is_err() {
                break;
            }
        }
        let end = next_end(&mut server, Duration::from_secs(10), "an oversized message").await;
        assert_eq!(end, StreamEnd::ClientError);
    }

    #[tokio::test]
    async fn a_watcher_that_reads_slowly_keeps_its_stream() {
        let limits = StreamLimits {
            send_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1000),
        };
        let mut server = server(limits).await;
        // Never pongs (a raw socket), but reads 64 KiB every 50 ms while the
        // gateway has far more to send: its pings wait behind full buffers.
        let mut slow = raw_watcher(server.port).await;
        let event = "x".repeat(64 * 1024);
        let events = server.events.clone();
        let pump = tokio::spawn(async move {
            loop {
                let _ = events.send(event.clone());
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        });
        let until = Instant::now() + Duration::from_secs(4);
        let mut read = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        while Instant::now() < until {
            read += slow.read(&mut buf).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(read > 64 * 1024, "read only {read} bytes");
        assert!(
            server.ends.try_recv().is_err(),
            "a watcher that reads was closed"
        );
        drop(slow);
        let end = next_end(&mut server, Duration::from_secs(10), "a gone watcher").await;
        pump.abort();
        assert!(
            matches!(end, StreamEnd::ClientClosed | StreamEnd::SendFailed),
            "{end:?}"
        );
    }
}
