//! The Kubernetes backend against kube's mock service (there is no API server on the build
//! machines): request paths, verbs and bodies, the mapping of API errors, 410 Gone, and
//! bookmarks moving a watch's resume point.

use brindle_datastore::kubernetes::KubernetesBackend;
use brindle_datastore::{Backend, ChangeOp, Error, Key, Kind};
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn backend() -> (KubernetesBackend, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(svc, "default");
    (KubernetesBackend::new(client, "kubernetes:mock"), handle)
}

fn pool_json(rv: &str) -> Value {
    json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
           "metadata": {"name": "a", "resourceVersion": rv, "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"cidr": "198.18.0.0/24"}})
}

fn status(code: u16, reason: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "message": format!("mock {reason}"), "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

/// Answers the next request after checking its method and path; returns its body.
async fn expect(
    handle: &mut Handle,
    method: Method,
    path: &str,
    resp: Response<Body>,
) -> (String, Value) {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), method, "{}", req.uri());
    assert_eq!(req.uri().path(), path);
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = req.into_body().collect_bytes().await.unwrap();
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    send.send_response(resp);
    (query, v)
}

#[tokio::test]
async fn get_create_update_delete() {
    let (b, mut h) = backend();
    let key = Key::new(Kind::IPPool, "a");
    let server = tokio::spawn(async move {
        expect(
            &mut h,
            Method::GET,
            "/apis/brindle.dev/v1/ippools/a",
            ok(&pool_json("42")),
        )
        .await;
        expect(
            &mut h,
            Method::GET,
            "/apis/brindle.dev/v1/ippools/a",
            status(404, "NotFound"),
        )
        .await;
        let (_, body) = expect(
            &mut h,
            Method::POST,
            "/apis/brindle.dev/v1/ippools",
            ok(&pool_json("43")),
        )
        .await;
        assert_eq!(body["spec"]["cidr"], "198.18.0.0/24");
        assert!(body["metadata"].get("resourceVersion").is_none(), "{body}");
        expect(
            &mut h,
            Method::POST,
            "/apis/brindle.dev/v1/ippools",
            status(409, "AlreadyExists"),
        )
        .await;
        let (_, body) = expect(
            &mut h,
            Method::PUT,
            "/apis/brindle.dev/v1/ippools/a",
            ok(&pool_json("44")),
        )
        .await;
        assert_eq!(
            body["metadata"]["resourceVersion"], "43",
            "CAS carries the expected version"
        );
        expect(
            &mut h,
            Method::PUT,
            "/apis/brindle.dev/v1/ippools/a",
            status(409, "Conflict"),
        )
        .await;
        let (_, body) = expect(
            &mut h,
            Method::DELETE,
            "/apis/brindle.dev/v1/ippools/a",
            ok(&pool_json("44")),
        )
        .await;
        assert_eq!(body["preconditions"]["resourceVersion"], "44", "{body}");
        expect(
            &mut h,
            Method::DELETE,
            "/apis/brindle.dev/v1/ippools/a",
            status(409, "Conflict"),
        )
        .await;
        expect(
            &mut h,
            Method::GET,
            "/apis/brindle.dev/v1/ippools/a",
            status(503, "ServiceUnavailable"),
        )
        .await;
        expect(
            &mut h,
            Method::GET,
            "/apis/brindle.dev/v1/namespaces/shop/networkpolicies/p",
            status(404, "NotFound"),
        )
        .await;
    });

    let s = b.get(&key).await.unwrap();
    assert_eq!(s.revision, 42);
    assert!(s.value["metadata"].get("resourceVersion").is_none());
    assert!(
        s.value["metadata"].get("uid").is_none(),
        "server fields are not stored"
    );
    assert!(matches!(b.get(&key).await, Err(Error::NotFound { .. })));
    let mut v = pool_json("0");
    v["metadata"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k == "name");
    assert_eq!(b.create(&key, &v).await.unwrap(), 43);
    assert!(matches!(
        b.create(&key, &v).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(b.update(&key, &v, 43).await.unwrap(), 44);
    assert!(matches!(
        b.update(&key, &v, 43).await,
        Err(Error::Conflict { .. })
    ));
    b.delete(&key, Some(44)).await.unwrap();
    assert!(matches!(
        b.delete(&key, Some(44)).await,
        Err(Error::Conflict { .. })
    ));
    match b.get(&key).await {
        Err(Error::Unavailable { endpoint, reason }) => {
            assert_eq!(endpoint, "kubernetes:mock");
            assert!(reason.contains("503"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let nskey = Key::namespaced(Kind::NetworkPolicy, "shop", "p");
    assert!(matches!(b.get(&nskey).await, Err(Error::NotFound { .. })));
    server.await.unwrap();
}

#[tokio::test]
async fn list_and_watch_with_bookmarks_and_410() {
    let (b, mut h) = backend();
    let server = tokio::spawn(async move {
        let list = json!({"apiVersion": "brindle.dev/v1", "kind": "IPPoolList",
                          "metadata": {"resourceVersion": "50"}, "items": [pool_json("42")]});
        expect(
            &mut h,
            Method::GET,
            "/apis/brindle.dev/v1/ippools",
            ok(&list),
        )
        .await;
        // A watch stream: one addition, a bookmark, one deletion, then 410 Gone.
        let mut lines = String::new();
        for ev in [
            json!({"type": "ADDED", "object": pool_json("51")}),
            json!({"type": "BOOKMARK", "object": {"kind": "IPPool", "apiVersion": "brindle.dev/v1", "metadata": {"resourceVersion": "60"}}}),
            // Unreadable (its version is not a number): skipped, not a stream stuck on it.
            json!({"type": "MODIFIED", "object": pool_json("not-a-number")}),
            json!({"type": "DELETED", "object": pool_json("61")}),
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}}),
        ] {
            lines.push_str(&ev.to_string());
            lines.push('\n');
        }
        let resp = Response::builder()
            .status(200)
            .body(Body::from(lines.into_bytes()))
            .unwrap();
        let (query, _) = expect(&mut h, Method::GET, "/apis/brindle.dev/v1/ippools", resp).await;
        assert!(query.contains("watch=true"), "{query}");
        assert!(query.contains("resourceVersion=50"), "{query}");
        assert!(query.contains("allowWatchBookmarks=true"), "{query}");
    });
    let (items, rev) = b.list(Kind::IPPool, None).await.unwrap();
    assert_eq!(rev, 50);
    assert_eq!(items.len(), 1);
    let mut changes = b.changes(Kind::IPPool, 50).await.unwrap();
    let c1 = changes.next().await.unwrap().unwrap();
    assert_eq!(c1.revision, 51);
    assert!(matches!(c1.op, ChangeOp::Created(_)));
    let bookmark = changes.next().await.unwrap().unwrap();
    assert_eq!((bookmark.revision, bookmark.op), (60, ChangeOp::Progress));
    let c2 = changes.next().await.unwrap().unwrap();
    assert_eq!((c2.revision, c2.op), (61, ChangeOp::Deleted));
    assert!(matches!(
        changes.next().await,
        Some(Err(Error::Compacted { .. }))
    ));
    server.await.unwrap();
}

/// A watch on a quiet kind: the server ends the stream (its timeout) after a bookmark; the
/// watch must resume from the bookmark's version, not from the listing's, which the server
/// may have compacted away by then.
#[tokio::test]
async fn watch_resumes_from_the_last_bookmark() {
    let (b, mut h) = backend();
    let ds = brindle_datastore::Datastore::new(std::sync::Arc::new(b));
    let server = tokio::spawn(async move {
        let list = json!({"apiVersion": "brindle.dev/v1", "kind": "IPPoolList",
                          "metadata": {"resourceVersion": "50"}, "items": [pool_json("42")]});
        expect(
            &mut h,
            Method::GET,
            "/apis/brindle.dev/v1/ippools",
            ok(&list),
        )
        .await;
        let bookmark = json!({"type": "BOOKMARK", "object": {"kind": "IPPool",
            "apiVersion": "brindle.dev/v1", "metadata": {"resourceVersion": "900"}}});
        let resp = Response::builder()
            .status(200)
            .body(Body::from(format!("{bookmark}\n").into_bytes()))
            .unwrap();
        let (query, _) = expect(&mut h, Method::GET, "/apis/brindle.dev/v1/ippools", resp).await;
        assert!(query.contains("resourceVersion=50"), "{query}");
        // The stream ended; the watch comes back from the bookmark.
        let added = json!({"type": "ADDED", "object": pool_json("901")});
        let resp = Response::builder()
            .status(200)
            .body(Body::from(format!("{added}\n").into_bytes()))
            .unwrap();
        let (query, _) = expect(&mut h, Method::GET, "/apis/brindle.dev/v1/ippools", resp).await;
        assert!(
            query.contains("resourceVersion=900"),
            "resumed with {query}"
        );
    });
    let mut w = ds.watch(Kind::IPPool, None);
    assert!(matches!(
        next(&mut w).await,
        brindle_datastore::WatchEvent::Added(_)
    ));
    assert_eq!(
        next(&mut w).await,
        brindle_datastore::WatchEvent::InSync(50)
    );
    match next(&mut w).await {
        brindle_datastore::WatchEvent::Added(r) => {
            assert_eq!(r.metadata().resource_version.as_deref(), Some("901"))
        }
        other => panic!("expected the addition after the bookmark, got {other:?}"),
    }
    server.await.unwrap();
}

async fn next(w: &mut brindle_datastore::WatchStream) -> brindle_datastore::WatchEvent {
    tokio::time::timeout(std::time::Duration::from_secs(10), w.next())
        .await
        .expect("a watch event in time")
        .expect("the watch is running")
}
