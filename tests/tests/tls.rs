//! A node only serves clients holding a coordinator certificate from the
//! cluster CA: not another CA's, not another node's, not none.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use maas_protocol::frame;
use maas_protocol::{BatchInput, BatchReply, DataType, InferBatch};
use maas_tests::cluster::{make_certs, TempDir};
use maas_tests::requests::to_le_bytes;
use maas_tests::{Cluster, NodeSpec, Reference};
use maas_transport::{read_frame, write_frame, StreamKind, TlsFiles, TransportSettings};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

fn mlp_batch() -> InferBatch {
    let row = Reference::load("mlp", 1).rows(0, 1);
    InferBatch {
        batch_id: 1,
        model: "mlp".into(),
        version: 1,
        inputs: vec![BatchInput::whole(
            "INPUT__0",
            DataType::Fp32,
            vec![1, 256],
            to_le_bytes("FP32", &row.inputs[0].data),
        )],
        request_rows: vec![1],
        request_ids: vec![String::new()],
    }
}

async fn submit(endpoint: &quinn::Endpoint, node: SocketAddr, request: &InferBatch) -> Result<BatchReply> {
    let exchange = async {
        let connection = endpoint.connect(node, "node-0")?.await.context("handshake")?;
        let (mut send, mut recv) = connection.open_bi().await.context("opening a stream")?;
        let (header, payload) = frame::encode_batch(request, frame::DEFAULT_MAX_FRAME_BYTES)?;
        write_frame(&mut send, Some(StreamKind::Data), &header, bytes::Bytes::from_owner(payload))
            .await
            .context("sending")?;
        let answer = read_frame(&mut recv, frame::DEFAULT_MAX_FRAME_BYTES).await.context("reading the answer")?;
        Ok(frame::decode_reply(&answer)?)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.context("no answer in 10 s")?
}

fn endpoint_without_client_certificate(ca: &std::path::Path) -> Result<quinn::Endpoint> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![maas_transport::ALPN.to_vec()];
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?)));
    Ok(endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cluster_certificates_can_submit_batches() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    let node = cluster.nodes[0].quic_addr;
    let settings = TransportSettings::default();
    let batch = mlp_batch();

    // The cluster's own certificate is served: the harness itself works.
    let member = maas_transport::client_endpoint(&TlsFiles::in_dir(&cluster.certs, "coordinator"), &settings).unwrap();
    match submit(&member, node, &batch).await.unwrap() {
        BatchReply::Ran(result) => assert_eq!(result.batch_id, 1),
        other => panic!("unexpected answer {other:?}"),
    }

    // A certificate signed by another CA, with the same name.
    let rogue_dir = TempDir::new("rogue-ca");
    make_certs(rogue_dir.path(), &["coordinator"]).unwrap();
    let rogue_files = TlsFiles {
        ca_cert: cluster.certs.join("ca.pem"),
        cert: rogue_dir.path().join("coordinator.pem"),
        key: rogue_dir.path().join("coordinator.key"),
    };
    let rogue = maas_transport::client_endpoint(&rogue_files, &settings).unwrap();
    let refused = submit(&rogue, node, &batch).await;
    assert!(refused.is_err(), "a certificate from another CA was served: {refused:?}");

    // The cluster CA's own certificate for another node: a node's role is
    // to serve, so it cannot command a node as a coordinator.
    make_certs(&cluster.certs, &["node-1"]).unwrap();
    let other_node = maas_transport::client_endpoint(&TlsFiles::in_dir(&cluster.certs, "node-1"), &settings).unwrap();
    let refused = submit(&other_node, node, &batch).await;
    assert!(refused.is_err(), "a node certificate acting as a coordinator was served: {refused:?}");

    // No certificate at all.
    let anonymous = endpoint_without_client_certificate(&cluster.certs.join("ca.pem")).unwrap();
    let refused = submit(&anonymous, node, &batch).await;
    assert!(refused.is_err(), "a client without a certificate was served: {refused:?}");

    let log = std::fs::read_to_string(&cluster.nodes[0].process.log).unwrap();
    assert!(log.contains("refused a QUIC connection"), "the node did not log the refusals:\n{log}");
    let node_metrics = cluster
        .client
        .get(format!("http://{}/metrics", cluster.nodes[0].metrics_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let batches = maas_tests::cluster::metric_sum(&node_metrics, "maas_node_batches_total", &[("model", "mlp")]);
    assert_eq!(batches, 1.0, "only the member's batch may have run");
}
