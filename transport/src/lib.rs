//! QUIC between coordinators and nodes.
//!
//! Every connection is TLS 1.3 with mutual authentication against one
//! cluster CA and the ALPN `maas/1`. [`certs`] makes a development CA and
//! certificates, [`tls`] turns PEM files into quinn configurations with the
//! cluster's transport settings, [`stream`] reads and writes frames on
//! QUIC streams, and [`control`] runs the ractor_cluster control plane over
//! one QUIC stream per connection; [`sealed_listener`] shuts the TCP door
//! ractor_cluster would otherwise leave open.

pub mod certs;
pub mod control;
pub mod sealed_listener;
pub mod stream;
pub mod tls;
pub mod wire;

pub use stream::{read_frame, write_frame, write_open_frame, StreamError, StreamKind};
pub use tls::{client_endpoint, server_endpoint, TlsFiles, TransportSettings};

/// The ALPN protocol every maas QUIC connection negotiates.
pub const ALPN: &[u8] = b"maas/1";
