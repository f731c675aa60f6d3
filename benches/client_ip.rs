//! Client IP resolution: a typical proxied request, and a 100 KB header.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use trackable_core::{ClientConfig, ForwardedHeader};

fn resolve(c: &mut Criterion) {
    let config = ClientConfig::new().trust_proxy("10.0.0.0/8").unwrap();
    let peer: IpAddr = "10.0.0.3".parse().unwrap();

    // Client, then the two proxies in front of the peer.
    let typical = "203.0.113.7, 10.0.0.1, 10.0.0.2";
    c.bench_function("xff 3 entries, 2 trusted", |b| {
        b.iter(|| config.resolve_ip(black_box(peer), [black_box(typical)]))
    });

    // 100 KB of trusted entries: the walk stops at the hop limit.
    let huge = format!("203.0.113.7, {}10.0.0.2", "10.0.0.1, ".repeat(10_000));
    assert!(huge.len() >= 100_000);
    c.bench_function("xff 100 KB, all trusted", |b| {
        b.iter(|| config.resolve_ip(black_box(peer), [black_box(huge.as_str())]))
    });

    // 100 KB without a separator: one element over the length bound.
    let blob = "9".repeat(100_000);
    c.bench_function("xff 100 KB, one element", |b| {
        b.iter(|| config.resolve_ip(black_box(peer), [black_box(blob.as_str())]))
    });

    let forwarded = config.clone().header(ForwardedHeader::Forwarded);
    let typical = "for=203.0.113.7;proto=https, for=10.0.0.1, for=10.0.0.2";
    c.bench_function("forwarded 3 elements, 2 trusted", |b| {
        b.iter(|| forwarded.resolve_ip(black_box(peer), [black_box(typical)]))
    });
}

criterion_group!(benches, resolve);
criterion_main!(benches);
