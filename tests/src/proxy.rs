//! Fault-injecting proxies on loopback: a UDP relay (for QUIC) and a TCP
//! relay (for etcd) that can be cut and healed, to partition a process from
//! the rest of the cluster.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;

/// A switch shared by relays: while cut, nothing passes.
#[derive(Clone, Default)]
pub struct Partition(Arc<AtomicBool>);

impl Partition {
    /// Stops all traffic through the relays.
    pub fn cut(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Lets traffic through again.
    pub fn heal(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    fn is_cut(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Relays UDP datagrams from a local port to `target`; returns the local address.
pub async fn udp_relay(target: SocketAddr, partition: Partition) -> std::io::Result<SocketAddr> {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let address = front.local_addr()?;
    let backs: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65536];
        while let Ok((len, client)) = front.recv_from(&mut buffer).await {
            if partition.is_cut() {
                continue;
            }
            let back = {
                let mut backs = backs.lock().await;
                match backs.get(&client) {
                    Some(back) => back.clone(),
                    None => {
                        let Ok(back) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                        let back = Arc::new(back);
                        backs.insert(client, back.clone());
                        let (front, back_reader, partition) = (front.clone(), back.clone(), partition.clone());
                        tokio::spawn(async move {
                            let mut buffer = vec![0u8; 65536];
                            while let Ok(len) = back_reader.recv(&mut buffer).await {
                                if !partition.is_cut() {
                                    let _ = front.send_to(&buffer[..len], client).await;
                                }
                            }
                        });
                        back
                    }
                }
            };
            let _ = back.send_to(&buffer[..len], target).await;
        }
    });
    Ok(address)
}

/// Relays TCP connections from a local port to `target`; while cut, open
/// connections stall and new ones are dropped. Returns the local address.
pub async fn tcp_relay(target: SocketAddr, partition: Partition) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            if partition.is_cut() {
                continue;
            }
            let partition = partition.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else { return };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    pump(client_read, server_write, partition.clone()),
                    pump(server_read, client_write, partition)
                );
            });
        }
    });
    Ok(address)
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, partition: Partition) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 65536];
    loop {
        let len = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(len) => len,
        };
        // A cut connection stays silent, like a broken network: drop it.
        if partition.is_cut() {
            return;
        }
        if to.write_all(&buffer[..len]).await.is_err() {
            return;
        }
    }
}
