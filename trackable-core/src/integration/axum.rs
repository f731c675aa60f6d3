use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use http::request::Parts;

use crate::client::{ClientConfig, ClientInfo};

/// Trusts nobody: the configuration used when a request carries none.
static PEER_ONLY: ClientConfig = ClientConfig::new();

/// Extracts the client of the request; never rejects.
///
/// - The peer address comes from `ConnectInfo<SocketAddr>`, as axum's own
///   extractor finds it: serve the router with
///   `into_make_service_with_connect_info::<SocketAddr>()` (or add the
///   `MockConnectInfo` layer in tests). Without it the IP is `None` and the source
///   [`IpSource::Unresolved`](crate::IpSource::Unresolved).
/// - The [`ClientConfig`] comes from a request extension holding a
///   `ClientConfig` or an `Arc<ClientConfig>` (add it with
///   `.layer(Extension(config))`). Without one, the client is the peer and no
///   header is read. To keep the configuration in the router state instead,
///   extract [`StateClientInfo`].
///
/// ```
/// use std::net::SocketAddr;
/// use axum::{Extension, Router, routing::post};
/// use trackable_core::{ClientConfig, ClientInfo};
///
/// async fn sign_in(client: ClientInfo) -> String {
///     format!("{:?} {:?}", client.ip(), client.user_agent())
/// }
///
/// # fn main() -> Result<(), trackable_core::ConfigError> {
/// let config = ClientConfig::new().trust_proxy("10.0.0.0/8")?;
/// let app = Router::new()
///     .route("/sign_in", post(sign_in))
///     .layer(Extension(config));
/// let _service = app.into_make_service_with_connect_info::<SocketAddr>();
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let config = parts
            .extensions
            .get::<ClientConfig>()
            .or_else(|| parts.extensions.get::<Arc<ClientConfig>>().map(|c| &**c))
            .unwrap_or(&PEER_ONLY);
        Ok(Self::from_connect_info(parts, config))
    }
}

impl ClientInfo {
    /// The client of an axum request under `config`, with the peer address
    /// taken from its `ConnectInfo<SocketAddr>` (or `MockConnectInfo`)
    /// extension (IP `None`,
    /// [`IpSource::Unresolved`](crate::IpSource::Unresolved), when it is
    /// missing).
    ///
    /// The [`ClientInfo`] extractor calls this with the configuration found
    /// in the request extensions; call it yourself to take the configuration
    /// from the router state:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use axum::extract::{FromRef, FromRequestParts};
    /// use http::request::Parts;
    /// use trackable_core::{ClientConfig, ClientInfo};
    ///
    /// struct Client(ClientInfo);
    ///
    /// impl<S> FromRequestParts<S> for Client
    /// where
    ///     Arc<ClientConfig>: FromRef<S>,
    ///     S: Send + Sync,
    /// {
    ///     type Rejection = std::convert::Infallible;
    ///
    ///     async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
    ///         let config = Arc::<ClientConfig>::from_ref(state);
    ///         Ok(Client(ClientInfo::from_connect_info(parts, &config)))
    ///     }
    /// }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn from_connect_info(parts: &Parts, config: &ClientConfig) -> Self {
        // The same lookup as axum's `ConnectInfo` extractor, test double included.
        let peer = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => Some(*peer),
            None => parts
                .extensions
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|MockConnectInfo(peer)| *peer),
        };
        match peer {
            Some(peer) => Self::from_parts(parts, peer, config),
            None => Self::new().with_user_agent_from(&parts.headers, config),
        }
    }
}

/// The client of the request, with the [`ClientConfig`] taken from the router state
/// (`Arc<ClientConfig>: FromRef<S>`) rather than from a request extension; never rejects.
///
/// ```
/// use std::net::SocketAddr;
/// use std::sync::Arc;
/// use axum::{Router, extract::FromRef, routing::post};
/// use trackable_core::{ClientConfig, StateClientInfo};
///
/// #[derive(Clone)]
/// struct AppState {
///     client_config: Arc<ClientConfig>,
/// }
///
/// impl FromRef<AppState> for Arc<ClientConfig> {
///     fn from_ref(state: &AppState) -> Self {
///         Arc::clone(&state.client_config)
///     }
/// }
///
/// async fn sign_in(StateClientInfo(client): StateClientInfo) -> String {
///     format!("{:?}", client.ip())
/// }
///
/// # fn main() -> Result<(), trackable_core::ConfigError> {
/// let state = AppState {
///     client_config: Arc::new(ClientConfig::new().trust_proxy("10.0.0.0/8")?),
/// };
/// let app: Router = Router::new().route("/sign_in", post(sign_in)).with_state(state);
/// let _service = app.into_make_service_with_connect_info::<SocketAddr>();
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateClientInfo(pub ClientInfo);

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S> FromRequestParts<S> for StateClientInfo
where
    Arc<ClientConfig>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let config = Arc::<ClientConfig>::from_ref(state);
        Ok(StateClientInfo(ClientInfo::from_connect_info(
            parts, &config,
        )))
    }
}
