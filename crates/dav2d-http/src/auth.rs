//! Bearer-token auth for every endpoint but `/healthz`, and, on a server
//! without a token, the `Host` check that stops DNS rebinding.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use dav2d_core::RejectReason;

use crate::state::{AppState, drain, error_response};

pub(crate) async fn authorize(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.config.listen.token
        && request.uri().path() != "/healthz"
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !bearer_matches(given, token) {
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
            return response;
        }
    }
    next.run(request).await
}

/// Refuses (400) an HTTP/1.1 request without a `Host` header, as RFC 9112
/// requires (and nginx does), whatever the token.
pub(crate) async fn require_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.version() == axum::http::Version::HTTP_11
        && !request.headers().contains_key(header::HOST)
    {
        state.intake.reject(RejectReason::ForbiddenHost, 1);
        state.intake.metrics().request(request.uri().path(), 400);
        return error_response(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request must carry a Host header",
        );
    }
    next.run(request).await
}

/// Refuses (403) a request a web page on another site sent (by its
/// `Sec-Fetch-Site` and `Origin` headers) unless `http.allowed_origins`
/// names its origin: a page the operator visits cannot write samples or
/// read state through the operator's browser. Requests not from a page
/// (curl, scripts) carry neither header and pass.
pub(crate) async fn check_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let refused = {
        let headers = request.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let origin = header(header::ORIGIN.as_str());
        let allowed = crate::config::origin_allowed(
            origin,
            header("sec-fetch-site"),
            header(header::HOST.as_str()),
            &state.config.allowed_origins,
        );
        let listed = origin.filter(|o| {
            let o = o.trim_end_matches('/');
            (state.config.allowed_origins.iter())
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o))
        });
        match (allowed, listed) {
            (false, _) => Err(origin
                .unwrap_or("none")
                .chars()
                .take(100)
                .collect::<String>()),
            (true, Some(listed)) => Ok(HeaderValue::from_str(listed).ok()),
            (true, None) => Ok(None),
        }
    };
    // A listed origin gets CORS: its preflight is answered here, and its
    // responses say it may read them.
    if let Ok(Some(origin)) = &refused {
        if request.method() == axum::http::Method::OPTIONS {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            cors(response.headers_mut(), origin);
            return response;
        }
        let origin = origin.clone();
        let mut response = next.run(request).await;
        cors(response.headers_mut(), &origin);
        return response;
    }
    if let Err(origin) = refused {
        state.intake.reject(RejectReason::ForbiddenHost, 1);
        state.intake.metrics().request(request.uri().path(), 403);
        return error_response(
            StatusCode::FORBIDDEN,
            format!(
                "a cross-site request (Origin '{origin}') is not served; list the origin in http.allowed_origins"
            ),
        );
    }
    next.run(request).await
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

/// Refuses (403) a request whose `Host` names something other than an IP
/// literal, `localhost` or `http.allowed_hosts`: a web page that rebinds
/// its own domain name to 127.0.0.1 sends its domain as `Host`.
pub(crate) async fn check_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or(""));
    if let Some(host) = host
        && !crate::config::host_allowed(host, &state.config.allowed_hosts)
    {
        state.intake.reject(RejectReason::ForbiddenHost, 1);
        state.intake.metrics().request(request.uri().path(), 403);
        return error_response(
            StatusCode::FORBIDDEN,
            format!(
                "Host '{}' is not served without a token; list it in http.allowed_hosts, or set http.token",
                host.chars().take(100).collect::<String>()
            ),
        );
    }
    next.run(request).await
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
