//! `maas tenants list | limit | unlimit`: the limits all of a tenant's
//! keys share.

use anyhow::Result;
use clap::Subcommand;
use maas_api::{KeyLimits, TenantInfo, TenantList};
use reqwest::Method;

use crate::client::Client;
use crate::limits::{describe, LimitArgs};
use crate::output::{print, table};

/// What to do with tenants.
#[derive(Subcommand)]
pub enum TenantsCommand {
    /// List tenants with keys or limits.
    List,
    /// Set the limits every key of a tenant shares (replacing its old ones).
    Limit {
        /// The tenant ('default' is the shared inference token's,
        /// 'anonymous' that of requests without a token).
        tenant: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Clear a tenant's limits (its keys keep their own).
    Unlimit {
        /// The tenant.
        tenant: String,
    },
}

/// Runs a tenants command.
pub async fn run(client: &Client, json: bool, command: TenantsCommand) -> Result<()> {
    let info: TenantInfo = match command {
        TenantsCommand::List => {
            let list: TenantList = client.get_as("/v1/tenants").await?;
            if json {
                print(&list);
            } else {
                let rows: Vec<Vec<String>> = list.tenants.iter().map(tenant_row).collect();
                table(&["TENANT", "KEYS", "LIMITS"], &rows);
            }
            return Ok(());
        }
        TenantsCommand::Limit { tenant, limits } => {
            let limits = KeyLimits::from(limits);
            client.send_as(Method::PUT, &format!("/v1/tenants/{tenant}/limits"), &limits).await?
        }
        TenantsCommand::Unlimit { tenant } => {
            client.send_empty_as(Method::DELETE, &format!("/v1/tenants/{tenant}/limits")).await?
        }
    };
    if json {
        print(&info);
    } else {
        println!("tenant {}: {}", info.tenant, describe(&info.limits));
    }
    Ok(())
}

fn tenant_row(tenant: &TenantInfo) -> Vec<String> {
    vec![tenant.tenant.clone(), tenant.keys.to_string(), describe(&tenant.limits)]
}
