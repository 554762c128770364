//! For tests that drive the emulated containers through real kubectl (the emulator's own and
//! Holdpoint's end-to-end suites).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Spawns `port_forward` (a `kubectl port-forward ... :PORT` command), waits for the local port
/// it picked, and sends each message on a connection of its own (half-closing it); returns what
/// came back on each (the emulated container echoes on every port). kubectl is killed at the end.
pub async fn port_forward_echo(
    mut port_forward: tokio::process::Command,
    messages: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, String> {
    let mut child = port_forward
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("kubectl does not run: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let port: u16 = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            // "Forwarding from 127.0.0.1:41234 -> 8080"
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                return rest.split_whitespace().next().and_then(|p| p.parse().ok());
            }
        }
        None
    })
    .await
    .map_err(|_| "port-forward did not start within 30s".to_string())?
    .ok_or("kubectl port-forward exited without forwarding")?;
    // keep reading: kubectl writes a line per connection and dies of a closed pipe
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut echoes = Vec::new();
    for msg in messages {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.write_all(msg).await.map_err(|e| e.to_string())?;
        tcp.shutdown().await.map_err(|e| e.to_string())?;
        let mut echoed = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut echoed))
            .await
            .map_err(|_| "no echo within 20s".to_string())?
            .map_err(|e| e.to_string())?;
        echoes.push(echoed);
    }
    let _ = child.kill().await;
    Ok(echoes)
}
