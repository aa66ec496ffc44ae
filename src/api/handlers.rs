//! The route handlers: each turns a matched request into a [`Reply`], in the reference's
//! order of checks.

use std::sync::Arc;

use bytes::Bytes;
use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};

use super::routes::Route;
use super::{ApiState, Limits};
use crate::model::json::{self, DecodeError};
use crate::model::{Direction, ToxicSnapshot};
use crate::registry::{Error, ProxyPatch};
use crate::toxics;

pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
pub const APPLICATION_JSON: &str = "application/json";
pub const VERSION_CONTENT_TYPE: &str = "application/json;charset=utf-8";
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The body Go's `http.TimeoutHandler` sends when a handler overruns.
pub const TIMEOUT_BODY: &str =
    "<html><head><title>Timeout</title></head><body><h1>Timeout</h1></body></html>";

/// A response before the middleware adds its headers.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<&'static str>,
    pub nosniff: bool,
    pub extra: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    fn new(status: u16, content_type: Option<&'static str>, body: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type,
            nosniff: false,
            extra: Vec::new(),
            body: body.into(),
        }
    }

    /// A successful JSON answer (`application/json`, no newline).
    pub fn json(status: u16, body: String) -> Reply {
        Reply::new(status, Some(APPLICATION_JSON), body)
    }

    /// Go's `http.Error`: `text/plain; charset=utf-8`, `nosniff`, the text plus a newline.
    pub fn text_error(status: u16, text: &str) -> Reply {
        let mut r = Reply::new(status, Some(TEXT_PLAIN), format!("{text}\n"));
        r.nosniff = true;
        r
    }

    /// The API error shape `{"error":"…","status":N}\n`, sent through `http.Error`.
    pub fn error(message: &str, status: u16) -> Reply {
        Reply::text_error(status, &json::error_json(message, status))
    }

    /// No body, no Content-Type.
    pub fn empty(status: u16) -> Reply {
        Reply::new(status, None, Bytes::new())
    }

    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> Reply {
        self.extra.push((name, HeaderValue::from_static(value)));
        self
    }

    /// 503 from the 25 s handler timeout.
    pub fn timeout() -> Reply {
        Reply::new(503, Some("text/html; charset=utf-8"), TIMEOUT_BODY)
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Reply {
        let status = e.status();
        if status == 500 {
            tracing::warn!(error = %e, "Error did not include status code");
        }
        Reply::error(&e.to_string(), status)
    }
}

fn bad_body(e: DecodeError) -> Reply {
    Reply::error(&format!("bad request body: {e}"), 400)
}

/// Why a request body could not be read.
enum BodyError {
    TooLarge,
    Read(String),
}

/// One matched request, as the handler task gets it.
pub struct Call {
    pub route: Route,
    pub method: Method,
    pub body: Incoming,
    pub content_length: Option<u64>,
    /// The request said `Expect: 100-continue`.
    pub expect_continue: bool,
    pub request_id: String,
}

struct Ctx {
    state: ApiState,
    limits: Arc<Limits>,
    body: Option<Incoming>,
    content_length: Option<u64>,
    expect_continue: bool,
}

/// How much of an oversized body is read and thrown away before answering 413, so that the
/// client has finished sending and reads the answer instead of a connection reset.
const DRAIN_LIMIT: u64 = 8 << 20;

impl Ctx {
    /// Reads the whole body, at most `limits.max_body` bytes, within the read timeout.
    async fn read_body(&mut self) -> Result<Bytes, BodyError> {
        let Some(mut body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        let max = self.limits.max_body as u64;
        let mut too_large = self.content_length.is_some_and(|n| n > max);
        if too_large && (self.expect_continue || self.content_length > Some(DRAIN_LIMIT)) {
            // The client is waiting for `100 Continue` (or would send too much): refuse now.
            return Err(BodyError::TooLarge);
        }
        let deadline = tokio::time::Instant::now() + self.limits.body_read_timeout;
        let mut buf = BytesMut::new();
        let mut total: u64 = 0;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(None) => break,
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(_))) | Err(_) if too_large => break,
                Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
                Err(_) => return Err(BodyError::Read("i/o timeout".to_owned())),
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len() as u64;
            if total > max {
                too_large = true;
                buf = BytesMut::new();
            }
            if too_large {
                if total > DRAIN_LIMIT {
                    break;
                }
            } else {
                buf.extend_from_slice(&data);
            }
        }
        if too_large {
            Err(BodyError::TooLarge)
        } else {
            Ok(buf.freeze())
        }
    }

    /// The body, or the error reply in the usual shape.
    async fn body(&mut self) -> Result<Bytes, Reply> {
        self.read_body().await.map_err(|e| match e {
            BodyError::TooLarge => too_large(Reply::error("request body too large", 413)),
            BodyError::Read(msg) => Reply::error(&format!("bad request body: {msg}"), 400),
        })
    }
}

/// A 413 also ends the connection: the rest of the body may still be on its way.
fn too_large(reply: Reply) -> Reply {
    reply.with_header(hyper::header::CONNECTION, "close")
}

/// Runs one handler to completion.
pub async fn run(state: ApiState, limits: Arc<Limits>, call: Call) -> Reply {
    let Call {
        route,
        method,
        body,
        content_length,
        expect_continue,
        request_id,
    } = call;
    let mut ctx = Ctx {
        state,
        limits,
        body: Some(body),
        content_length,
        expect_continue,
    };
    let result = match route {
        Route::Reset => reset(&ctx).await,
        Route::ProxyIndex => Ok(Reply::json(
            200,
            json::proxy_index_json(&ctx.state.registry.list()),
        )),
        Route::ProxyCreate => proxy_create(&mut ctx).await,
        Route::Populate => Ok(populate(&mut ctx).await),
        Route::ProxyShow(name) => ctx
            .state
            .registry
            .get(&name)
            .map(|p| Reply::json(200, json::proxy_json(&p)))
            .map_err(Reply::from),
        Route::ProxyUpdate(name) => {
            if method == Method::POST {
                tracing::warn!(
                    request_id = %request_id,
                    "ProxyUpdate: HTTP method POST is deprecated. Use HTTP PATCH instead."
                );
            }
            proxy_update(&mut ctx, &name).await
        }
        Route::ProxyDelete(name) => ctx
            .state
            .registry
            .delete(&name)
            .await
            .map(|()| Reply::empty(204))
            .map_err(Reply::from),
        Route::ToxicIndex(proxy) => ctx
            .state
            .registry
            .toxics(&proxy)
            .map(|t| Reply::json(200, json::toxics_json(&t)))
            .map_err(Reply::from),
        Route::ToxicCreate(proxy) => toxic_create(&mut ctx, &proxy).await,
        Route::ToxicShow(proxy, toxic) => ctx
            .state
            .registry
            .toxic(&proxy, &toxic)
            .map(|t| Reply::json(200, json::toxic_json(&t)))
            .map_err(Reply::from),
        Route::ToxicUpdate(proxy, toxic) => {
            if method == Method::POST {
                tracing::warn!(
                    request_id = %request_id,
                    "ToxicUpdate: HTTP method POST is deprecated. Use HTTP PATCH instead."
                );
            }
            toxic_update(&mut ctx, &proxy, &toxic).await
        }
        Route::ToxicDelete(proxy, toxic) => ctx
            .state
            .registry
            .remove_toxic(&proxy, &toxic)
            .map(|()| Reply::empty(204))
            .map_err(Reply::from),
        Route::Version => Ok(version()),
        Route::Metrics => Ok(metrics(&ctx).await),
    };
    result.unwrap_or_else(|reply| reply)
}

/// GET /version: `{"version": "X"}\n`, as the reference formats it by hand.
pub fn version() -> Reply {
    Reply::new(
        200,
        Some(VERSION_CONTENT_TYPE),
        format!("{{\"version\": \"{}\"}}\n", crate::VERSION),
    )
}

async fn metrics(ctx: &Ctx) -> Reply {
    let Some(render) = ctx.state.metrics.clone() else {
        return Reply::text_error(404, "404 page not found");
    };
    match tokio::task::spawn_blocking(move || render()).await {
        Ok(text) => Reply::new(200, Some(METRICS_CONTENT_TYPE), text),
        Err(_) => Reply::error("metrics rendering failed", 500),
    }
}

async fn reset(ctx: &Ctx) -> Result<Reply, Reply> {
    ctx.state.registry.reset().await?;
    Ok(Reply::empty(204))
}

async fn proxy_create(ctx: &mut Ctx) -> Result<Reply, Reply> {
    let body = ctx.body().await?;
    let fields = json::decode_proxy(&body).map_err(bad_body)?;
    let proxy = ctx.state.registry.create(fields.into_input()).await?;
    Ok(Reply::json(201, json::proxy_json(&proxy)))
}

async fn proxy_update(ctx: &mut Ctx, name: &str) -> Result<Reply, Reply> {
    ctx.state.registry.get(name)?;
    let body = ctx.body().await?;
    let fields = json::decode_proxy(&body).map_err(bad_body)?;
    let patch = ProxyPatch {
        listen: fields.listen,
        upstream: fields.upstream,
        enabled: fields.enabled,
    };
    let proxy = ctx.state.registry.update(name, patch).await?;
    Ok(Reply::json(200, json::proxy_json(&proxy)))
}

/// POST /populate. Every answer, errors included, is `application/json` without a newline
/// and carries `proxies`.
async fn populate(ctx: &mut Ctx) -> Reply {
    let failed = |message: &str, status: u16| {
        Reply::json(status, json::populate_json(Some((message, status)), None))
    };
    let body = match ctx.read_body().await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(failed("request body too large", 413)),
        Err(BodyError::Read(msg)) => return failed(&format!("bad request body: {msg}"), 400),
    };
    let entries = match json::decode_populate(&body) {
        Ok(entries) => entries,
        Err(e) => return failed(&format!("bad request body: {e}"), 400),
    };
    let (proxies, error) = ctx.state.registry.populate(entries).await;
    if let Some(e) = &error {
        tracing::warn!(error = %e, "Populate errors");
    }
    let status = error.as_ref().map_or(201, Error::status);
    let message = error.as_ref().map(|e| e.to_string());
    Reply::json(
        status,
        json::populate_json(message.as_deref().map(|m| (m, status)), proxies.as_deref()),
    )
}

async fn toxic_create(ctx: &mut Ctx, proxy: &str) -> Result<Reply, Reply> {
    let registry = ctx.state.registry.clone();
    registry.get(proxy)?;
    let body = ctx.body().await?;
    let request = json::decode_toxic_create(&body).map_err(bad_body)?;
    let stream = request
        .stream
        .clone()
        .unwrap_or_else(|| "downstream".to_owned());
    let Some(direction) = Direction::parse(&stream) else {
        return Err(Reply::error(
            "stream was invalid, can be either upstream or downstream",
            400,
        ));
    };
    let type_name = request.type_name.clone().unwrap_or_default();
    let name = match &request.name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!("{type_name}_{stream}"),
    };
    let Some(mut kind) = toxics::default_for(&type_name) else {
        return Err(Reply::error("invalid toxic type", 400));
    };
    match registry.toxic(proxy, &name) {
        Ok(_) => return Err(Error::ToxicExists.into()),
        Err(Error::ToxicNotFound) => {}
        Err(e) => return Err(e.into()),
    }
    request.decode_attributes(&mut kind).map_err(bad_body)?;
    kind.validate().map_err(|msg| Reply::error(&msg, 400))?;
    let toxic = ToxicSnapshot {
        name,
        stream,
        direction,
        toxicity: request.toxicity.unwrap_or(1.0),
        kind,
        matcher: request.matcher.clone(),
    };
    let added = registry.add_toxic(proxy, toxic)?;
    Ok(Reply::json(200, json::toxic_json(&added)))
}

async fn toxic_update(ctx: &mut Ctx, proxy: &str, toxic: &str) -> Result<Reply, Reply> {
    let registry = ctx.state.registry.clone();
    registry.toxic(proxy, toxic)?;
    let body = ctx.body().await?;
    let update = json::decode_toxic_update(&body).map_err(bad_body)?;
    let updated = registry.update_toxic(proxy, toxic, |t| {
        update
            .apply(t)
            .map_err(|e| Error::BadRequest(format!("bad request body: {e}")))
    })?;
    Ok(Reply::json(200, json::toxic_json(&updated)))
}
