//! Bearer-token auth for every endpoint but `/healthz`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use dav2d_core::RejectReason;

use crate::ingest::drain;
use crate::serve::{AppState, error_response};

pub(crate) async fn authorize(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.config.token
        && request.uri().path() != "/healthz"
    {
        let expected = format!("Bearer {token}");
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
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
