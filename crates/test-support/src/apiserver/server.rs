//! The HTTP/1.1 listener: accepts connections, hands requests to the handlers, and can be stopped
//! (every connection and watch dropped) and started again on the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt as _;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::errors::ApiError;
use super::handlers::{handle, Call, Inner, Reply, MAX_BODY_BYTES};
use super::paths::Query;

/// A whole JSON body, or a watch stream fed through a channel.
pub(crate) enum ResponseBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

fn response(reply: Reply) -> Response<ResponseBody> {
    let (code, content_type, body) = match reply {
        Reply::Json {
            code,
            body,
            content_type,
        } => (
            code,
            content_type,
            ResponseBody::Full(Some(Bytes::from(
                serde_json::to_vec(&body).unwrap_or_default(),
            ))),
        ),
        Reply::Text(code, text) => (
            code,
            "text/plain; charset=utf-8",
            ResponseBody::Full(Some(Bytes::from(text))),
        ),
        Reply::Stream(rx) => (200, "application/json", ResponseBody::Stream(rx)),
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn serve_request(
    inner: Arc<Inner>,
    request: Request<Incoming>,
    shutdown: watch::Receiver<bool>,
) -> Response<ResponseBody> {
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    let body = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let error = ApiError::too_large();
            return response(Reply::Json {
                code: error.code,
                body: error.to_status(),
                content_type: "application/json",
            });
        }
    };
    let call = Call {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: Query::parse(parts.uri.query()),
        raw_query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
    };
    let reply = handle(&inner, call, shutdown).await;
    response(reply)
}

/// One period of listening, from `start`/`restart` to `stop`.
pub(crate) struct Serving {
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<()>,
    /// Closed once the accept loop and every connection have ended.
    alive: mpsc::Receiver<()>,
}

impl Serving {
    /// Drops every connection and watch and waits until they are gone.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut self.accept).await;
        let _ = self.alive.recv().await;
    }
}

/// Resolves once the server is told to stop (or its owner is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopped| *stopped).await;
}

pub(crate) fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // The port must be free again at once for `restart`.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

pub(crate) fn serve(listener: TcpListener, inner: Arc<Inner>) -> Serving {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (alive_tx, alive) = mpsc::channel(1);
    let accept = tokio::spawn(accept_loop(listener, inner, shutdown_rx, alive_tx));
    Serving {
        shutdown,
        accept,
        alive,
    }
}

async fn accept_loop(
    listener: TcpListener,
    inner: Arc<Inner>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let for_connections = shutdown.clone();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(connection(stream, inner.clone(), for_connections.clone(), alive.clone()));
                }
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    inner: Arc<Inner>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    let request_shutdown = shutdown.clone();
    let service = hyper::service::service_fn(move |request| {
        let inner = inner.clone();
        let shutdown = request_shutdown.clone();
        async move { Ok::<_, Infallible>(serve_request(inner, request, shutdown).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        // Dropping the connection closes the socket mid-stream, like a crashed API server.
        () = stopped(&mut shutdown) => {}
    }
    drop(alive);
}
