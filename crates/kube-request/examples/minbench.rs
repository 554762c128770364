use std::hint::black_box;
use std::time::Instant;
fn main() {
    let cases = [
        (
            "/api/v1/namespaces/default/pods",
            Some("labelSelector=app%3Dweb&limit=500&resourceVersion=12345"),
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments/web",
            Some("timeout=32s"),
        ),
    ];
    for (p, q) in cases {
        let mut best = f64::MAX;
        for _ in 0..3000 {
            let t = Instant::now();
            for _ in 0..200 {
                black_box(
                    kube_request::classify(
                        black_box(&http::Method::GET),
                        black_box(p),
                        black_box(q),
                    )
                    .unwrap(),
                );
            }
            best = best.min(t.elapsed().as_nanos() as f64 / 200.0);
        }
        println!("{p} {q:?}: min {best:.0} ns/op");
    }
}
