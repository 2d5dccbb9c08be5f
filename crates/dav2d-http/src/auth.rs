//! Every request's guard, one layer: `Host` required on HTTP/1.1, pages
//! of other sites refused unless their origin is listed (CORS for those
//! that are), bearer-token auth for every endpoint but `/healthz` and the dashboard's
//! assets (which hold no data), and, on
//! a server without a token, the `Host` check that stops DNS rebinding.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use dav2d_core::RejectReason;

use crate::state::{AppState, drain, error_response};

/// Every request's guard, in one layer (one per request): an HTTP/1.1
/// request must name its `Host`; a request a page on another site sent is
/// refused unless its origin is listed (a listed one gets CORS); then the
/// token, or without one the `Host` check.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(refused) = missing_host(&state, &request) {
        return refused;
    }
    let cors_origin = match cross_site(&state, &request) {
        Ok(origin) => origin,
        Err(refused) => return *refused,
    };
    if let Some(origin) = &cors_origin
        && request.method() == axum::http::Method::OPTIONS
    {
        // A listed origin's preflight is answered here.
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        cors(response.headers_mut(), origin);
        return response;
    }
    let request = match &state.config.listen.token {
        Some(token) => match authorize(&state, token, request).await {
            Ok(request) => request,
            Err(refused) => return *refused,
        },
        None => {
            if let Some(refused) = forbidden_host(&state, &request) {
                return refused;
            }
            request
        }
    };
    let mut response = next.run(request).await;
    if let Some(origin) = &cors_origin {
        cors(response.headers_mut(), origin);
    }
    response
}

/// The request when it carries the token (`/healthz` needs none); else the
/// 401, its body drained so the client can read it.
async fn authorize(
    state: &AppState,
    token: &str,
    request: Request,
) -> Result<Request, Box<Response>> {
    // The dashboard's page and assets hold no data; the page asks for the
    // token and sends it with each read.
    let path = request.uri().path();
    if path == "/healthz" || crate::dashboard::is_asset(path) {
        return Ok(request);
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if bearer_matches(given, token) {
        return Ok(request);
    }
    state.intake.reject(RejectReason::Unauthorized, 1);
    state.intake.metrics().request(request.uri().path(), 401);
    drain(
        request.into_body(),
        state.config.max_body,
        state.config.body_timeout,
    )
    .await;
    let mut response = error_response(
        StatusCode::UNAUTHORIZED,
        "this server requires 'Authorization: Bearer <token>' (http.token)",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(Box::new(response))
}

/// 400 for an HTTP/1.1 request without a `Host` header, as RFC 9112
/// requires (and nginx does), whatever the token.
fn missing_host(state: &AppState, request: &Request) -> Option<Response> {
    if request.version() != axum::http::Version::HTTP_11
        || request.headers().contains_key(header::HOST)
    {
        return None;
    }
    state.intake.reject(RejectReason::ForbiddenHost, 1);
    state.intake.metrics().request(request.uri().path(), 400);
    Some(error_response(
        StatusCode::BAD_REQUEST,
        "an HTTP/1.1 request must carry a Host header",
    ))
}

/// A request a web page on another site sent (by its `Sec-Fetch-Site` and
/// `Origin` headers) is refused (403) unless `http.allowed_origins` names
/// its origin: a page the operator visits cannot write samples or read
/// state through the operator's browser. Requests not from a page (curl,
/// scripts) carry neither header and pass. `Ok(Some(origin))`: a listed
/// origin, which gets CORS.
fn cross_site(state: &AppState, request: &Request) -> Result<Option<HeaderValue>, Box<Response>> {
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let origin = header(header::ORIGIN.as_str());
    let site = header("sec-fetch-site");
    if origin.is_none() && site.is_none() {
        return Ok(None);
    }
    let seen = crate::config::site_of(
        origin,
        site,
        header(header::HOST.as_str()),
        &state.config.allowed_origins,
    );
    match seen {
        crate::config::Site::Own => return Ok(None),
        crate::config::Site::Listed => {
            return Ok(origin.and_then(|o| HeaderValue::from_str(o).ok()));
        }
        crate::config::Site::Foreign => {}
    }
    let origin: String = origin.unwrap_or("none").chars().take(100).collect();
    state.intake.reject(RejectReason::ForbiddenHost, 1);
    state.intake.metrics().request(request.uri().path(), 403);
    Err(Box::new(error_response(
        StatusCode::FORBIDDEN,
        format!(
            "a cross-site request (Origin '{origin}') is not served; list the origin in http.allowed_origins"
        ),
    )))
}

/// The CORS headers of a response to a listed origin.
fn cors(headers: &mut axum::http::HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, Content-Encoding"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

/// 403 for a request whose `Host` names something other than an IP
/// literal, `localhost` or `http.allowed_hosts` (on a server without a
/// token): a web page that rebinds its own domain name to 127.0.0.1 sends
/// its domain as `Host`.
fn forbidden_host(state: &AppState, request: &Request) -> Option<Response> {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or(""))?;
    if crate::config::host_allowed(host, &state.config.allowed_hosts) {
        return None;
    }
    state.intake.reject(RejectReason::ForbiddenHost, 1);
    state.intake.metrics().request(request.uri().path(), 403);
    Some(error_response(
        StatusCode::FORBIDDEN,
        format!(
            "Host '{}' is not served without a token; list it in http.allowed_hosts, or set http.token",
            host.chars().take(100).collect::<String>()
        ),
    ))
}

/// Whether `given` (an `Authorization` header) carries `token`: the scheme
/// is case-insensitive (RFC 9110), the token is compared in constant time
/// so its bytes cannot be guessed from response times.
fn bearer_matches(given: Option<&str>, token: &str) -> bool {
    let Some((scheme, credentials)) = given.and_then(|v| v.trim().split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && dav2d_component::token_matches(credentials.trim().as_bytes(), token)
}

#[cfg(test)]
mod tests {
    use super::bearer_matches;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        let cases = [
            (Some("Bearer s3cret"), true),
            (Some("bearer s3cret"), true),
            (Some("BEARER  s3cret "), true),
            (Some("Bearer s3cre"), false),
            (Some("Bearer s3cretx"), false),
            (Some("Basic s3cret"), false),
            (Some("s3cret"), false),
            (None, false),
        ];
        for (given, expected) in cases {
            assert_eq!(bearer_matches(given, "s3cret"), expected, "{given:?}");
        }
    }
}
