//! Typed extractors: an endpoint states its access rule in its signature.
//!
//! - `user: AuthUser`: any signed-in, not frozen account.
//! - `admin: Require<perm::MemberManage>`: a signed-in account whose roles
//!   grant that permission; anyone else gets 403 `forbidden`.
//! - `ip: ClientIp`: the caller's address (from `X-Forwarded-For` only when
//!   `server.trust_forwarded_for` is on).

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::perm::Permission;
use super::session::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState missing from app data")))
}

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or(ApiError::new(ErrorCode::Unauthenticated))?;
    let text = value.to_str().map_err(|_| ApiError::new(ErrorCode::Unauthenticated))?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(ErrorCode::Unauthenticated.into()),
    }
}

/// A signed-in account (any role).
#[derive(Debug, Clone)]
pub struct AuthUser(pub Arc<Principal>);

impl Deref for AuthUser {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let token = bearer_token(req);
        Box::pin(async move {
            let (state, token) = (state?, token?);
            state.sessions.authenticate(&token).await.map(AuthUser)
        })
    }
}

/// A signed-in account holding permission `P`.
#[derive(Debug, Clone)]
pub struct Require<P: Permission> {
    pub user: AuthUser,
    _permission: PhantomData<P>,
}

impl<P: Permission> Deref for Require<P> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.user
    }
}

impl<P: Permission + 'static> FromRequest for Require<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let user = user.await?;
            if !user.has(P::NAME) {
                return Err(ApiError::new(ErrorCode::Forbidden)
                    .with_message(format!("this action needs the permission {}", P::NAME)));
            }
            Ok(Require { user, _permission: PhantomData })
        })
    }
}

/// The caller's IP address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// The client address of a request, honouring `trust_forwarded_for`.
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            // The right-most entry is the one our proxy appended; the ones
            // to its left come from the client and can be forged.
            .and_then(|v| v.rsplit(',').next())
            .and_then(|first| first.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|addr| addr.ip())
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trust = app_state(req).map(|s| s.settings.server.trust_forwarded_for).unwrap_or(false);
        ready(
            client_ip(req, trust)
                .map(ClientIp)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("request without a peer address"))),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use actix_web::test::TestRequest;

    use super::client_ip;

    #[test]
    fn the_proxy_appended_forwarded_address_is_used_only_when_trusted() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.7"))
            .to_http_request();
        assert_eq!(client_ip(&req, true).map(|ip| ip.to_string()).as_deref(), Some("203.0.113.7"));
        assert_eq!(client_ip(&req, false).map(|ip| ip.to_string()).as_deref(), Some("10.0.0.1"));
    }
}
