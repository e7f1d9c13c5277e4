//! Batching under a real h2 server connection, on a transport that counts
//! its writes: frames coalesce, and a response's last frame is never left
//! in the buffer.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::DuplexStream,
    sync::{Semaphore, mpsc},
};
use tokio_stream::StreamExt;

use super::*;

/// Far longer than anything here takes, on a paused clock that only moves
/// when every task waits: a frame left unflushed makes a test wait this
/// long, and fail.
const PATIENCE: Duration = Duration::from_secs(60);

/// One end of a connection: counts the writes that carry bytes, and
/// takes nothing in while its gate is shut, as a client that does not
/// read.
struct Counting {
    io: DuplexStream,
    writes: Arc<AtomicUsize>,
    gate: Arc<Gate>,
}

/// Whether a [`Counting`] end reads.
#[derive(Default)]
struct Gate {
    shut: std::sync::atomic::AtomicBool,
    waker: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Gate {
    fn set_shut(&self, shut: bool) {
        self.shut.store(shut, Ordering::SeqCst);
        if !shut && let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

impl Counting {
    fn new(io: DuplexStream) -> Self {
        Self {
            io,
            writes: Arc::default(),
            gate: Arc::default(),
        }
    }

    fn io(&mut self) -> Pin<&mut DuplexStream> {
        Pin::new(&mut self.io)
    }
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.gate.shut.load(Ordering::SeqCst) {
            *self.gate.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.gate.shut.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        self.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(self.io().poll_write(cx, buf))?;
        if written > 0 {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

/// What a response is made of: data frames, then trailers.
enum Part {
    Data(Bytes),
    Trailers(http::HeaderMap),
}

/// Serves one HTTP/2 connection on `io`, with or without batching; each
/// request is answered with the parts the next receiver in `bodies`
/// yields.
fn serve(io: Counting, batched: bool, bodies: mpsc::Receiver<mpsc::Receiver<Part>>) {
    if batched {
        tokio::spawn(serve_on(Batching::new(io, Default::default()), bodies));
    } else {
        tokio::spawn(serve_on(io, bodies));
    }
}

async fn serve_on<T>(io: T, mut bodies: mpsc::Receiver<mpsc::Receiver<Part>>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = h2::server::handshake(io).await.unwrap();
    while let Some(Ok((_request, mut respond))) = connection.accept().await {
        let mut parts = bodies.recv().await.expect("a body per request");
        tokio::spawn(async move {
            let mut send = respond
                .send_response(http::Response::new(()), false)
                .unwrap();
            while let Some(part) = parts.recv().await {
                match part {
                    Part::Data(data) => {
                        send.reserve_capacity(data.len());
                        while send.capacity() < data.len() {
                            std::future::poll_fn(|cx| send.poll_capacity(cx))
                                .await
                                .unwrap()
                                .unwrap();
                        }
                        send.send_data(data, false).unwrap();
                    }
                    Part::Trailers(trailers) => {
                        send.send_trailers(trailers).unwrap();
                        return;
                    }
                }
            }
        });
    }
}

/// An h2 client on `io`, with windows wide enough that flow control never
/// holds the server back; and the task driving its connection.
async fn client<T>(io: T) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 24)
        .initial_connection_window_size(1 << 24)
        .handshake::<_, Bytes>(io)
        .await
        .unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, driver)
}

/// Asks for a response, and reads it whole: every data byte, then the
/// trailers.
async fn fetch(client: &mut h2::client::SendRequest<Bytes>) -> (Vec<u8>, http::HeaderMap) {
    let request = http::Request::post("http://localhost/").body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let mut body = response.await.unwrap().into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body
        .trailers()
        .await
        .unwrap()
        .expect("trailers end the body");
    (data, trailers)
}

fn trailers() -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    trailers
}

/// Writes to the socket while the server sends `frames` DATA frames of
/// 8 KiB, all ready at once, then trailers.
async fn writes_for_a_burst(batched: bool, frames: usize) -> usize {
    let (server_io, client_io) = tokio::io::duplex(1 << 22);
    let io = Counting::new(server_io);
    let writes = Arc::clone(&io.writes);
    let (bodies_tx, bodies) = mpsc::channel(1);
    serve(io, batched, bodies);
    let (mut client, _driver) = client(client_io).await;
    // The handshake's own writes are not the response's.
    client = client.ready().await.unwrap();
    let before = writes.load(Ordering::SeqCst);

    let (tx, rx) = mpsc::channel(frames + 1);
    let chunk = Bytes::from(vec![b'x'; 8 * 1024]);
    for _ in 0..frames {
        tx.try_send(Part::Data(chunk.clone())).unwrap();
    }
    tx.try_send(Part::Trailers(trailers())).unwrap();
    bodies_tx.send(rx).await.unwrap();

    let (data, trailers) = tokio::time::timeout(PATIENCE, fetch(&mut client))
        .await
        .expect("the whole response arrives, trailers included");
    assert_eq!(data.len(), frames * 8 * 1024);
    assert_eq!(trailers["grpc-status"], "0");
    writes.load(Ordering::SeqCst) - before
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_frames_leaves_in_a_few_writes_not_one_each() {
    // 32 frames of 8 KiB: 256 KiB, which fits in four batches.
    let unbatched = writes_for_a_burst(false, 32).await;
    let batched = writes_for_a_burst(true, 32).await;
    assert!(
        unbatched >= 32,
        "without batching, h2 writes each DATA frame on its own ({unbatched} writes)"
    );
    assert!(
        batched <= 8,
        "with batching, 256 KiB should leave in a few writes, not {batched}"
    );
}

#[tokio::test(start_paused = true)]
async fn every_frame_of_a_trickle_arrives_without_waiting_for_the_next() {
    // Lockstep: the server sends frame N+1 only after the client has
    // received frame N. A frame held back for company would stall both
    // sides until the test's patience ran out.
    let (server_io, client_io) = tokio::io::duplex(1 << 22);
    let (bodies_tx, bodies) = mpsc::channel(1);
    serve(Counting::new(server_io), true, bodies);
    let mut client = client(client_io).await.0.ready().await.unwrap();

    let received = Arc::new(Semaphore::new(0));
    let frames = {
        let received = Arc::clone(&received);
        tokio_stream::iter(0..20u8).then(move |i| {
            let received = Arc::clone(&received);
            async move {
                if i > 0 {
                    received.acquire().await.unwrap().forget();
                }
                Part::Data(Bytes::from(vec![i; 100]))
            }
        })
    };
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut frames = std::pin::pin!(frames);
        while let Some(frame) = frames.next().await {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Part::Trailers(trailers())).await;
    });
    bodies_tx.send(rx).await.unwrap();

    let request = http::Request::post("http://localhost/").body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let mut body = tokio::time::timeout(PATIENCE, response)
        .await
        .expect("the response headers arrive")
        .unwrap()
        .into_body();
    let mut data = Vec::new();
    for i in 0..20u8 {
        let chunk = tokio::time::timeout(PATIENCE, body.data())
            .await
            .unwrap_or_else(|_| panic!("frame {i} never arrived"))
            .unwrap()
            .unwrap();
        assert_eq!(chunk[0], i);
        data.extend_from_slice(&chunk);
        received.add_permits(1);
    }
    let trailers = tokio::time::timeout(PATIENCE, body.trailers())
        .await
        .expect("the trailers, the last frame, arrive")
        .unwrap()
        .unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(data.len(), 20 * 100);
}

/// A server that answers one request with 512 KiB and trailers, all queued
/// at once, and hands over the watch on the response's last frame; and a
/// client that has sent that request with its reading shut. Checks that the
/// last frame waits.
async fn response_queued_for_a_client_not_reading() -> (
    crate::transport::ends::LastFrame,
    h2::client::ResponseFuture,
    Arc<Gate>,
    tokio::task::JoinHandle<()>,
) {
    use crate::transport::ends::StreamEnds;

    let (server_io, client_io) = tokio::io::duplex(16 * 1024);
    let ends = Arc::new(StreamEnds::default());
    let (last_tx, last_rx) = tokio::sync::oneshot::channel();
    tokio::spawn({
        let ends = Arc::clone(&ends);
        async move {
            let io = Batching::new(server_io, Arc::clone(&ends));
            let mut connection = h2::server::Builder::new()
                .max_send_buffer_size(1 << 20)
                .handshake(io)
                .await
                .unwrap();
            let (_request, mut respond) = connection.accept().await.unwrap().unwrap();
            let mut send = respond
                .send_response(http::Response::new(()), false)
                .unwrap();
            send.send_data(Bytes::from(vec![b'x'; 512 * 1024]), false)
                .unwrap();
            let last = ends.expect(send.stream_id().as_u32());
            send.send_trailers(trailers()).unwrap();
            last_tx.send((last, send)).ok().unwrap();
            while let Some(Ok(_)) = connection.accept().await {}
        }
    });
    let io = Counting::new(client_io);
    let gate = Arc::clone(&io.gate);
    let (client, driver) = client(io).await;
    let mut client = client.ready().await.unwrap();
    gate.set_shut(true);
    let request = http::Request::post("http://localhost/").body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let (mut last, _send) = last_rx.await.unwrap();
    // The clock moves only once every task waits: nothing more can happen.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut last)
            .await
            .is_err(),
        "the trailers are queued behind 512 KiB the client has not read"
    );
    (last, response, gate, driver)
}

#[tokio::test(start_paused = true)]
async fn a_last_frame_counts_as_written_once_the_client_reads_up_to_it() {
    let (last, response, gate, _driver) = response_queued_for_a_client_not_reading().await;
    gate.set_shut(false);
    let mut body = response.await.unwrap().into_body();
    let mut read = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        read += chunk.len();
    }
    assert_eq!(read, 512 * 1024);
    assert_eq!(
        tokio::time::timeout(PATIENCE, last).await,
        Ok(crate::transport::ends::Ended::Written)
    );
}

#[tokio::test(start_paused = true)]
async fn a_last_frame_still_queued_when_the_connection_closes_is_dropped() {
    let (last, _response, _gate, driver) = response_queued_for_a_client_not_reading().await;
    // The client's connection goes, and with it its socket.
    driver.abort();
    assert_eq!(
        tokio::time::timeout(PATIENCE, last).await,
        Ok(crate::transport::ends::Ended::Dropped)
    );
}
