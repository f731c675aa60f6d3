//! `ClientInfo` from `http` requests and through an axum `Router`.
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use tower::ServiceExt;
use trackable::ip;
use trackable_core::{ClientConfig, ClientInfo, ForwardedHeader, IpSource};

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn behind_proxy() -> ClientConfig {
    ClientConfig::new().trust_proxy("10.0.0.0/8").unwrap()
}

async fn show(client: ClientInfo) -> String {
    format!(
        "{}|{}|{}",
        client.ip().map(|ip| ip.to_string()).unwrap_or_default(),
        client.ip_source(),
        client.user_agent().unwrap_or_default()
    )
}

async fn call(app: Router, request: Request<Body>) -> String {
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

fn request(headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().uri("/");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn without_config_the_peer_is_the_client() {
    let app = Router::new()
        .route("/", get(show))
        .layer(MockConnectInfo(peer("10.0.0.1:5000")));
    let got = call(
        app,
        request(&[("x-forwarded-for", "203.0.113.7"), ("user-agent", "curl/8")]),
    )
    .await;
    assert_eq!(got, "10.0.0.1|peer|curl/8");
}

#[tokio::test]
async fn config_extension_trusts_the_proxy() {
    let app = Router::new()
        .route("/", get(show))
        .layer(Extension(behind_proxy()))
        .layer(MockConnectInfo(peer("10.0.0.1:5000")));
    let got = call(
        app,
        request(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]),
    )
    .await;
    assert_eq!(got, "203.0.113.7|header|");
}

#[tokio::test]
async fn arc_config_extension_is_used() {
    let config = behind_proxy().header(ForwardedHeader::Forwarded);
    let app = Router::new()
        .route("/", get(show))
        .layer(Extension(Arc::new(config)))
        .layer(MockConnectInfo(peer("[::ffff:10.0.0.1]:5000")));
    let got = call(
        app,
        request(&[("forwarded", "for=\"[2001:db8::7]:443\";proto=https")]),
    )
    .await;
    assert_eq!(got, "2001:db8::7|header|");
}

#[tokio::test]
async fn untrusted_peer_ignores_the_header() {
    let app = Router::new()
        .route("/", get(show))
        .layer(Extension(behind_proxy()))
        .layer(MockConnectInfo(peer("198.51.100.9:5000")));
    let got = call(app, request(&[("x-forwarded-for", "203.0.113.7")])).await;
    assert_eq!(got, "198.51.100.9|peer|");
}

#[tokio::test]
async fn without_connect_info_the_ip_is_unresolved() {
    let app = Router::new()
        .route("/", get(show))
        .layer(Extension(behind_proxy()));
    let got = call(
        app,
        request(&[("x-forwarded-for", "203.0.113.7"), ("user-agent", "ua")]),
    )
    .await;
    assert_eq!(got, "|unresolved|ua");
}

#[tokio::test]
async fn bad_headers_never_fail_the_request() {
    let app = Router::new()
        .route("/", get(show))
        .layer(Extension(behind_proxy().max_user_agent_len(8)))
        .layer(MockConnectInfo(peer("10.0.0.1:5000")));
    let huge = "10.0.0.2, ".repeat(10_000);
    // A garbage line, then 100 KB of trusted entries: the walk gives up at
    // the hop limit.
    let mut req = request(&[
        ("x-forwarded-for", "garbage"),
        ("x-forwarded-for", huge.as_str()),
    ]);
    req.headers_mut().insert(
        "user-agent",
        HeaderValue::from_bytes(b"\xffbad\tagent and more").unwrap(),
    );
    let got = call(app, req).await;
    assert_eq!(got, "|unresolved|\u{fffd}bad a");
}

#[test]
fn from_parts_reads_every_header_line() {
    let (parts, ()) = Request::builder()
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
        .header("x-forwarded-for", "10.0.0.2")
        .header("user-agent", "  Mozilla/5.0\t(X11)  ")
        .body(())
        .unwrap()
        .into_parts();
    let client = ClientInfo::from_parts(&parts, peer("10.0.0.1:443"), &behind_proxy());
    assert_eq!(client.ip(), Some(ip("203.0.113.7")));
    assert_eq!(client.ip_source(), IpSource::Header);
    assert_eq!(client.user_agent(), Some("Mozilla/5.0 (X11)"));
}

#[test]
fn from_headers_single_ip_header() {
    let config = behind_proxy().header(ForwardedHeader::single_ip("CF-Connecting-IP"));
    let (parts, ()) = Request::builder()
        .header("Cf-Connecting-Ip", "203.0.113.7")
        .header("x-forwarded-for", "6.6.6.6")
        .body(())
        .unwrap()
        .into_parts();
    let client = ClientInfo::from_headers(&parts.headers, peer("10.0.0.1:443"), &config);
    assert_eq!(client.ip(), Some(ip("203.0.113.7")));

    // Used only when the peer is trusted.
    let client = ClientInfo::from_headers(&parts.headers, peer("198.51.100.1:443"), &config);
    assert_eq!(
        (client.ip(), client.ip_source()),
        (Some(ip("198.51.100.1")), IpSource::Peer)
    );

    // Built without `single_ip`, the name is still matched without case.
    let config = behind_proxy().header(ForwardedHeader::SingleIp("CF-CONNECTING-IP".into()));
    let client = ClientInfo::from_headers(&parts.headers, peer("10.0.0.1:443"), &config);
    assert_eq!(client.ip(), Some(ip("203.0.113.7")));

    // A name that no header can have matches nothing, without panicking.
    let config = behind_proxy().header(ForwardedHeader::SingleIp("not a name\n".into()));
    let client = ClientInfo::from_headers(&parts.headers, peer("10.0.0.1:443"), &config);
    assert_eq!(client.ip_source(), IpSource::Peer);
}

#[test]
fn from_headers_without_header_source() {
    let config = behind_proxy().header(ForwardedHeader::None);
    let (parts, ()) = Request::builder()
        .header("x-forwarded-for", "203.0.113.7")
        .body(())
        .unwrap()
        .into_parts();
    let client = ClientInfo::from_parts(&parts, peer("10.0.0.1:443"), &config);
    assert_eq!(
        (client.ip(), client.ip_source(), client.user_agent()),
        (Some(ip("10.0.0.1")), IpSource::Peer, None)
    );
}

#[test]
fn user_agent_is_cut_while_reading() {
    let config = ClientConfig::new().max_user_agent_len(5);
    let long = format!("é{}", "x".repeat(100_000));
    let (parts, ()) = Request::builder()
        .header("user-agent", long.as_str())
        .body(())
        .unwrap()
        .into_parts();
    let client = ClientInfo::from_parts(&parts, peer("198.51.100.1:1"), &config);
    assert_eq!(client.user_agent(), Some("éxxx"));
    let client = ClientInfo::from_parts(&parts, peer("198.51.100.1:1"), &ClientConfig::new());
    assert_eq!(client.user_agent().map(str::len), Some(256));
}

#[tokio::test]
async fn the_configuration_can_come_from_the_router_state() {
    use axum::extract::FromRef;
    use trackable_core::StateClientInfo;

    #[derive(Clone)]
    struct AppState {
        client_config: Arc<ClientConfig>,
    }

    impl FromRef<AppState> for Arc<ClientConfig> {
        fn from_ref(state: &AppState) -> Self {
            Arc::clone(&state.client_config)
        }
    }

    async fn whoami(StateClientInfo(client): StateClientInfo) -> String {
        format!("{:?} {}", client.ip(), client.ip_source())
    }

    let state = AppState {
        client_config: Arc::new(ClientConfig::new().trust_proxy("10.0.0.0/8").unwrap()),
    };
    let app = Router::new()
        .route("/", get(whoami))
        .with_state(state)
        .layer(MockConnectInfo(SocketAddr::from(([10, 0, 0, 5], 443))));
    let response = app
        .oneshot(
            Request::builder()
                .uri("/")
                .header("x-forwarded-for", "203.0.113.9, 10.0.0.7")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        "Some(203.0.113.9) header"
    );
}
