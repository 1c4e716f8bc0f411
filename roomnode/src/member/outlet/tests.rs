//! Unit tests of [`super::Outlet`]: the frame encoder, the queue bound,
//! ending, and order on a socket that blocks.

use super::*;

fn config(max_queue: usize) -> OutletConfig {
    OutletConfig {
        max_queue,
        direct: true,
    }
}

fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::new("i1".parse().unwrap()))
}

#[test]
fn frames_round_trip_through_the_encoder() {
    for len in [0, 1, 125, 126, 65_535, 65_536] {
        let text = "x".repeat(len);
        assert_eq!(frame_text(&text_frame(&text)), text);
    }
    assert_eq!(&text_frame("hi")[..], b"\x81\x02hi");
}

#[test]
fn a_member_without_a_socket_queues_up_to_the_bound() {
    let out = Outlet::new(None, config(2), metrics());
    let f = text_frame("a");
    assert_eq!(out.send(&f, None), Ok(()));
    assert_eq!(out.send(&f, None), Ok(()));
    assert_eq!(out.send(&f, None), Err(Overflow));
    out.queue(text_frame("b")).unwrap();
    assert_eq!(out.take_texts(), ["a", "a", "b"]);
    assert_eq!(out.send(&f, None), Ok(()));
}

#[test]
fn ending_now_drops_the_queue_but_not_a_frame_half_written() {
    let out = Outlet::new(None, config(8), metrics());
    let f = text_frame("a");
    out.send(&f, None).unwrap();
    out.send(&f, None).unwrap();
    out.lock().written = 1;
    out.end(CloseReason::shutdown(), true);
    assert_eq!(out.lock().queue.len(), 1);
    assert!(out.ending().is_some());
    // Ended: later room frames are dropped, not queued.
    out.send(&f, None).unwrap();
    assert_eq!(out.lock().queue.len(), 1);
}

#[tokio::test]
async fn a_socket_gets_every_frame_in_order_even_when_it_blocks() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let mut client = client.unwrap();
    let server = Arc::new(accepted.unwrap().0);
    let out = Arc::new(Outlet::new(Some(server), config(1_000_000), metrics()));
    let writer = {
        let out = out.clone();
        tokio::spawn(async move { out.serve().await })
    };
    // Far more than the socket buffers hold while nobody reads, so some
    // frames are written straight and some wait.
    let body = "y".repeat(1000);
    let count = 20_000;
    for i in 0..count {
        out.send(&text_frame(&format!("{i:05}{body}")), None)
            .unwrap();
    }
    out.end(CloseReason::shutdown(), false);
    let total: usize = (0..count)
        .map(|i| text_frame(&format!("{i:05}{body}")).len())
        .sum();
    let mut got = vec![0; total];
    client.read_exact(&mut got).await.unwrap();
    let ended = writer.await.unwrap();
    assert!(matches!(ended, End::Close(_)), "{ended:?}");
    let mut at = 0;
    for i in 0..count {
        let text = frame_text(&got[at..]);
        assert_eq!(&text[..5], format!("{i:05}"), "frame {i}");
        at += text_frame(&text).len();
    }
    assert_eq!(at, got.len());
}
