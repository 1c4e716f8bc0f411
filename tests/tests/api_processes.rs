//! The router's HTTP API cases that need the real binaries and a real etcd
//! (the rest run in process, in `api_inproc/`): a flag of `router serve`
//! (`--metrics-listen`), and read-your-writes over an etcd watch, whose
//! delay is what makes a stale read show.

use std::time::Duration;

use testkit::{Cluster, Http, eventually, free_port, metrics};

/// Bound on any one wait for asynchronous state.
const WAIT: Duration = Duration::from_secs(10);

/// Read-your-writes: once `DELETE` answered 204, the same router must not
/// serve the room any more. Its reads come from a mirror fed by an etcd
/// watch, so a stale answer shows only sometimes; fifty rounds make a miss
/// all but certain to show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_room_is_gone_at_once_where_it_was_deleted() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    for i in 0..50 {
        let id = format!("rw{i}");
        cluster.create_room(&id).await;
        assert_eq!(http.get(&format!("/rooms/{id}")).await.status, 200);
        let r = http.delete(&format!("/rooms/{id}")).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = http.get(&format!("/rooms/{id}")).await;
        assert_eq!(
            r.status, 404,
            "round {i}: GET /rooms/{id} right after its DELETE answered 204 on the same router: {}",
            r.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_to_their_own_listener() {
    let mut cluster = Cluster::start(3, 2).await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    cluster.add_router(&["--metrics-listen", &addr]).await;
    let public = cluster.router(2).http();
    let r = public.get("/metrics").await;
    assert_eq!(r.status, 404, "{}", r.text);
    let private = Http::new(format!("http://{addr}"));
    let http = private.clone();
    eventually(WAIT, "the metrics listener lists 3 nodes", async || {
        let r = http.get("/metrics").await;
        r.status == 200 && metrics::sum(&r.text, "router_nodes") == Some(3.0)
    })
    .await;
    // The API stays on the public listener only.
    assert_eq!(public.get("/nodes").await.status, 200);
    assert_eq!(private.get("/nodes").await.status, 404);
}
