//! `maas usage`: what each tenant used, per model version.

use anyhow::Result;
use maas_api::UsageReport;

use crate::client::Client;
use crate::output::{print, table};

/// Prints the use of the last `minutes`, of `tenant` or of all.
pub async fn usage(client: &Client, json: bool, minutes: u64, tenant: Option<&str>) -> Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut path = format!("/v1/usage?from={}&to={}", now.saturating_sub(minutes * 60), now + 1);
    if let Some(tenant) = tenant {
        path.push_str(&format!("&tenant={tenant}"));
    }
    let report: UsageReport = client.get_as(&path).await?;
    if json {
        print(&report);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .usage
        .iter()
        .map(|line| {
            vec![
                line.tenant.clone(),
                line.model.clone(),
                line.version.to_string(),
                line.requests.to_string(),
                line.rows.to_string(),
                line.errors.to_string(),
                line.bytes_in.to_string(),
                line.bytes_out.to_string(),
                format!("{:.3}", line.compute_us as f64 / 1e6),
            ]
        })
        .collect();
    table(&["TENANT", "MODEL", "VERSION", "REQUESTS", "ROWS", "ERRORS", "BYTES IN", "BYTES OUT", "COMPUTE S"], &rows);
    Ok(())
}
