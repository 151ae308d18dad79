//! The HTTP embedder speaks the OpenAI `/embeddings` protocol, checked
//! against a fake server on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread;

use opticlaw_memory::embed::HttpEmbedder;
use opticlaw_memory::{Embedder, MemoryEngine, MemoryError, NewMemory, Query};

/// Serve `responses` (status, body) one per connection; return the base URL
/// and a handle yielding the request bodies received.
fn fake_server(responses: Vec<(u16, String)>) -> (String, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let mut bodies = Vec::new();
        for (status, body) in responses {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            let mut line = String::new();
            let mut path_ok = false;
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line.starts_with("POST /v1/embeddings") {
                    path_ok = true;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            assert!(path_ok, "request went to /v1/embeddings");
            let mut buf = vec![0; len];
            reader.read_exact(&mut buf).unwrap();
            bodies.push(String::from_utf8(buf).unwrap());
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        bodies
    });
    (url, handle)
}

fn vectors(n: usize, dim: usize) -> String {
    let data: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let v: Vec<f32> = (0..dim)
                .map(|j| if j == i % dim { 3.0 } else { 0.0 })
                .collect();
            serde_json::json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    serde_json::json!({"object": "list", "data": data}).to_string()
}

#[test]
fn http_embedder_posts_inputs_and_returns_normalised_vectors() {
    let (url, server) = fake_server(vec![(200, vectors(2, 4))]);
    let e = HttpEmbedder::new(&url, "nomic-embed-text", 4).unwrap();
    let got = e.embed(&["alpha", "beta"]).unwrap();
    assert_eq!(
        got,
        vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0]]
    );
    let bodies = server.join().unwrap();
    let sent: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(sent["model"], "nomic-embed-text");
    assert_eq!(sent["input"], serde_json::json!(["alpha", "beta"]));
}

#[test]
fn http_embedder_of_the_wrong_dimension_is_refused_clearly() {
    let (url, server) = fake_server(vec![(200, vectors(1, 3))]);
    let e = HttpEmbedder::new(&url, "m", 4).unwrap();
    let err = e.embed(&["x"]).unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::DimensionMismatch {
                expected: 4,
                actual: 3
            }
        ),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn http_embedder_server_error_names_the_status() {
    let (url, server) = fake_server(vec![(500, "{\"error\":\"model not loaded\"}".into())]);
    let e = HttpEmbedder::new(&url, "m", 4).unwrap();
    let err = e.embed(&["x"]).unwrap_err().to_string();
    assert!(
        err.contains("500") && err.contains("model not loaded"),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn engine_refuses_an_embedder_whose_dimension_differs_from_stored_vectors() {
    let (url, server) = fake_server(vec![
        (200, vectors(1, 4)),
        (200, vectors(1, 4)),
        (200, vectors(1, 4)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    {
        let mut engine = MemoryEngine::open(&path).unwrap();
        engine
            .set_embedder(Box::new(HttpEmbedder::new(&url, "m", 4).unwrap()))
            .unwrap();
        engine
            .add(NewMemory::semantic("the sky is blue", 0.9, "test"))
            .unwrap();
        assert_eq!(engine.stats().unwrap().vectors, 1);
        assert_eq!(engine.search(&Query::new("sky", 1)).unwrap().len(), 1);
    }
    server.join().unwrap();
    let mut engine = MemoryEngine::open(&path).unwrap();
    let err = engine
        .set_embedder(Box::new(
            HttpEmbedder::new("http://127.0.0.1:9", "m", 8).unwrap(),
        ))
        .unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::DimensionMismatch {
                expected: 4,
                actual: 8
            }
        ),
        "{err}"
    );
}
